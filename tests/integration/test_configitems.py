"""ConfigurationItems in the Git CMDB, through the real operator, API server and bare remote."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.processes import free_ports
from tests.support import Kubectl, OperatorProcess, wait_for

TOKEN = "ghp_" + "T0k3nPlanted" * 3
SECRET_VALUE = "pl4nted-s3cret-value"


def _git(devenv: DevEnvironment, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(devenv.cmdb_remote), *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _commits(devenv: DevEnvironment) -> int:
    return int(_git(devenv, "rev-list", "--count", "main").strip())


def _record(devenv: DevEnvironment, namespace: str, name: str) -> dict[str, Any] | None:
    path = f"clusters/test/{namespace}/configurationitems/{name}.yaml"
    result = subprocess.run(
        ["git", "--git-dir", str(devenv.cmdb_remote), "show", f"main:{path}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return yaml.safe_load(result.stdout) if result.returncode == 0 else None


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next(
        (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None
    )


def _ci(name: str, namespace: str, extra: str = "") -> str:
    return f"""
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  service: shop
{extra}"""


def _synced(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    obj = kubectl.json("get", "ci", name, "-n", namespace)
    synced = _condition(obj, "CMDBSynced")
    return obj if synced and synced["status"] == "True" else None


def _events(kubectl: Kubectl, namespace: str, name: str, reason: str) -> int:
    """How many times an Event with `reason` was posted about object `name`."""
    events = kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return sum(e.get("count") or 1 for e in events if e["reason"] == reason)


def _item_syncs(devenv: DevEnvironment) -> float:
    """ConfigurationItem reconciliations so far, from the operator's /metrics."""
    port = devenv.ports()["operator-metrics"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("opsledger_reconciliations_total{")
        and 'kind="ConfigurationItem"' in line
    )


def test_fifty_items_become_fifty_records_in_a_handful_of_commits(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("create", "namespace", "fleet")
    before = _commits(devenv)
    kubectl(
        "apply", "-f", "-", input="\n---\n".join(_ci(f"item-{i:02d}", "fleet") for i in range(50))
    )

    def all_synced() -> bool:
        items = kubectl.json("get", "ci", "-n", "fleet")["items"]
        return len(items) == 50 and all(
            (_condition(i, "CMDBSynced") or {}).get("status") == "True" for i in items
        )

    wait_for(all_synced, timeout=120, what="50 items synced to the CMDB")
    files = [
        f
        for f in _git(devenv, "ls-tree", "-r", "--name-only", "main").split()
        if f.startswith("clusters/test/fleet/configurationitems/")
    ]
    assert len(files) == 50
    assert 1 <= _commits(devenv) - before <= 6
    item = kubectl.json("get", "ci", "item-07", "-n", "fleet")
    assert item["status"]["cmdb"]["path"] == "clusters/test/fleet/configurationitems/item-07.yaml"
    assert item["status"]["cmdb"]["commit"] in _git(devenv, "log", "--format=%H", "main")


DEPLOYMENT = f"""
apiVersion: v1
kind: Secret
metadata: {{name: payment-keys, namespace: live}}
stringData: {{api-key: {SECRET_VALUE}}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: live
  annotations: {{example.com/deploy-token: {TOKEN}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: app
        image: registry.example/web:1.0
        env:
        - name: PAYMENT_KEY
          valueFrom: {{secretKeyRef: {{name: payment-keys, key: api-key}}}}
"""


def test_an_item_follows_its_source_and_retires_when_it_goes(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("create", "namespace", "live")
    kubectl("apply", "-f", "-", input=DEPLOYMENT)
    kubectl("rollout", "status", "deployment/web", "-n", "live", "--timeout=90s")
    kubectl(
        "apply",
        "-f",
        "-",
        input=_ci(
            "web",
            "live",
            """  attributes: {replicas: 3}
  source: {apiVersion: apps/v1, kind: Deployment, name: web}""",
        ),
    )
    item = wait_for(lambda: _synced(kubectl, "live", "web"), timeout=60, what="web synced")
    assert item["status"]["class"] == "Workload"

    def observed_ready() -> dict[str, Any] | None:
        found = _synced(kubectl, "live", "web")
        return found if found and found["status"]["observed"].get("readyReplicas") == 2 else None

    item = wait_for(observed_ready, timeout=60, what="web observed with its 2 ready replicas")
    drifted = _condition(item, "Drifted")
    assert drifted is not None
    assert drifted["status"] == "True"
    assert "replicas" in drifted["message"]
    record = _record(devenv, "live", "web")
    assert record is not None
    assert record["observed"]["images"] == {"app": "registry.example/web:1.0"}
    assert record["drift"] == ["replicas"]

    before = _commits(devenv)
    kubectl("set", "image", "deployment/web", "app=registry.example/web:2.0", "-n", "live")
    kubectl("rollout", "status", "deployment/web", "-n", "live", "--timeout=90s")
    wait_for(
        lambda: (
            (_record(devenv, "live", "web") or {}).get("observed", {}).get("images")
            == {"app": "registry.example/web:2.0"}
        ),
        timeout=60,
        what="the new image recorded",
    )
    wait_for(
        lambda: (
            kubectl.json("get", "ci", "web", "-n", "live")["status"]["observed"]["readyReplicas"]
            == 2
        ),
        timeout=60,
        what="the rollout to settle in status",
    )
    assert _commits(devenv) == before + 1  # the rollout's status churn adds no commits
    message = _git(devenv, "log", "-1", "--format=%B", "main")
    assert "Deployment web changed" in message

    kubectl("delete", "deployment", "web", "-n", "live")
    retired = wait_for(
        lambda: (_record(devenv, "live", "web") or {}).get("retiredReason"),
        timeout=60,
        what="the record to say the item is retired",
    )
    assert retired == "source Deployment web no longer exists"
    assert _record(devenv, "live", "web")["spec"]["lifecycle"] == "retired"  # type: ignore[index]
    wait_for(
        lambda: kubectl.json("get", "ci", "web", "-n", "live")["spec"]["lifecycle"] == "retired",
        timeout=30,
        what="the item's lifecycle to be retired",
    )

    history = _git(devenv, "log", "-p", "--all")
    assert SECRET_VALUE not in history
    assert TOKEN not in history
    assert "fromSecret: payment-keys/api-key" in history


def test_a_second_item_for_the_same_source_is_refused(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("create", "namespace", "dupes")
    kubectl("create", "deployment", "api", "--image=registry.example/api:1", "-n", "dupes")
    source = "  source: {apiVersion: apps/v1, kind: Deployment, name: api}"
    kubectl("apply", "-f", "-", input=_ci("api", "dupes", source))
    wait_for(lambda: _synced(kubectl, "dupes", "api"), timeout=60, what="the first item")
    kubectl("apply", "-f", "-", input=_ci("api-again", "dupes", source))

    def refused() -> dict[str, Any] | None:
        ready = _condition(kubectl.json("get", "ci", "api-again", "-n", "dupes"), "Ready")
        return ready if ready and ready["reason"] == "DuplicateSource" else None

    ready = wait_for(refused, timeout=30, what="DuplicateSource")
    assert ready["status"] == "False"
    assert "already described by ConfigurationItem dupes/api" in ready["message"]


def test_a_restart_with_nothing_changed_writes_nothing(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    kubectl("create", "namespace", "steady")
    kubectl("apply", "-f", "-", input=_ci("steady", "steady"))
    wait_for(lambda: _synced(kubectl, "steady", "steady"), timeout=60, what="steady synced")
    operator.stop()  # what it had batched is pushed as it stops: not the restart's doing
    before = _commits(devenv)
    restarted = OperatorProcess(devenv, tmp_path / "restarted.log").start()
    try:
        wait_for(
            lambda: "[steady/steady] Resuming is processed" in restarted.output(),
            timeout=60,
            what="the restarted operator to resume the item",
        )
        assert _commits(devenv) == before
    finally:
        restarted.stop()
        operator.start()


def test_an_unreachable_remote_delays_records_and_loses_none(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("create", "namespace", "offline")
    moved = devenv.cmdb_remote.with_name("cmdb-moved-away.git")
    shutil.move(devenv.cmdb_remote, moved)
    try:
        kubectl(
            "apply",
            "-f",
            "-",
            input="\n---\n".join(_ci(f"late-{i}", "offline") for i in range(3))
            + "\n---\n"
            + _ci("fleeting", "offline"),
        )

        def unsynced(name: str = "late-0") -> dict[str, Any] | None:
            synced = _condition(kubectl.json("get", "ci", name, "-n", "offline"), "CMDBSynced")
            return synced if synced and synced["status"] == "False" else None

        synced = wait_for(unsynced, timeout=60, what="CMDBSynced=False")
        assert synced["reason"] == "RemoteUnavailable"
        assert "does not appear to be a git repository" in synced["message"]
        assert "will retry every 2s" in synced["message"]

        # retried every 2 s while the remote is away, but reported once
        retries = "ConfigurationItem offline/late-0: writing its record to the CMDB again"
        seen = operator.output().count(retries)
        wait_for(
            lambda: operator.output().count(retries) >= seen + 3,
            timeout=30,
            what="three retries of late-0",
        )
        assert _events(kubectl, "offline", "late-0", "CMDBUnavailable") == 1

        # an item whose record was never written is deleted at once, remote or not
        wait_for(lambda: unsynced("fleeting"), timeout=60, what="fleeting unsynced")
        kubectl("delete", "ci", "fleeting", "-n", "offline", "--timeout=20s")
    finally:
        shutil.move(moved, devenv.cmdb_remote)
    for i in range(3):
        wait_for(
            lambda i=i: _synced(kubectl, "offline", f"late-{i}"),
            timeout=60,
            what=f"late-{i} synced after the remote came back",
        )
        assert _record(devenv, "offline", f"late-{i}") is not None
    assert _record(devenv, "offline", "fleeting") is None


def test_deleting_an_item_leaves_a_retired_record(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("create", "namespace", "gone")
    kubectl("apply", "-f", "-", input=_ci("legacy", "gone"))
    wait_for(lambda: _synced(kubectl, "gone", "legacy"), timeout=60, what="legacy synced")
    kubectl("delete", "ci", "legacy", "-n", "gone", "--timeout=60s")
    record = _record(devenv, "gone", "legacy")
    assert record is not None
    assert record["spec"]["lifecycle"] == "retired"
    assert record["retiredReason"] == "the ConfigurationItem was deleted from the cluster"


GRAPH = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: graph}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: frontend}}
    spec: {containers: [{name: app, image: "registry.example/web:1"}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-svc, namespace: graph}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {name: orders-db, namespace: graph}
spec: {class: Database, criticality: critical}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {name: web, namespace: graph}
spec:
  source: {apiVersion: apps/v1, kind: Deployment, name: web}
  relationships: [{type: dependsOn, target: orders-db}]
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {name: web-svc, namespace: graph}
spec:
  source: {apiVersion: v1, kind: Service, name: web-svc}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {name: storefront, namespace: graph}
spec:
  class: Application
  relationships: [{type: dependsOn, target: web-svc}]
"""


def test_relationships_are_discovered_and_impact_is_transitive(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("create", "namespace", "graph")
    kubectl("apply", "-f", "-", input=GRAPH)

    def exposes() -> list[dict[str, str]] | None:
        status = kubectl.json("get", "ci", "web-svc", "-n", "graph").get("status", {})
        return status.get("relationships") or None

    assert wait_for(exposes, timeout=60, what="web-svc exposes web") == [
        {"type": "exposes", "target": "web"}
    ]
    wait_for(
        lambda: (
            kubectl.json("get", "ci", "orders-db", "-n", "graph")["status"].get("dependents") == 3
        ),
        timeout=60,
        what="orders-db to count 3 dependents",
    )
    wait_for(
        lambda: (
            {"type": "exposes", "target": "web"}
            in ((_record(devenv, "graph", "web-svc") or {}).get("relationships") or [])
        ),
        timeout=30,
        what="the exposes edge in the web-svc record",
    )

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "opsledger",
            "cmdb",
            "impact",
            "orders-db",
            "-n",
            "graph",
            f"--kubeconfig={devenv.kubeconfig}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == [
        "graph/orders-db (Database)",
        "└── dependsOn → graph/web (Workload)",
        "    └── exposes → graph/web-svc (Service)",
        "        └── dependsOn → graph/storefront (Application)",
    ]


def test_discovery_creates_items_for_selected_workloads_and_retires_them(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("create", "namespace", "found")
    kubectl("create", "deployment", "billing", "--image=registry.example/billing:3", "-n", "found")
    kubectl(
        "label",
        "deployment",
        "billing",
        "-n",
        "found",
        "opsledger.io/discover=true",
        "app.kubernetes.io/part-of=payments",
    )
    kubectl("create", "deployment", "scratch", "--image=registry.example/scratch:1", "-n", "found")

    item = wait_for(
        lambda: _synced(kubectl, "found", "billing"),
        timeout=60,
        what="a discovered item for billing",
    )
    assert item["metadata"]["labels"]["opsledger.io/discovered"] == "true"
    assert item["spec"]["service"] == "payments"
    assert item["spec"]["source"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "billing",
    }
    record = _record(devenv, "found", "billing")
    assert record is not None
    assert record["observed"]["images"] == {"billing": "registry.example/billing:3"}
    names = [i["metadata"]["name"] for i in kubectl.json("get", "ci", "-n", "found")["items"]]
    assert names == ["billing"]  # the unlabelled Deployment is not discovered

    kubectl("delete", "deployment", "billing", "-n", "found")
    wait_for(
        lambda: (_record(devenv, "found", "billing") or {}).get("retiredReason"),
        timeout=60,
        what="the discovered item to be retired, not deleted",
    )
    assert kubectl.json("get", "ci", "billing", "-n", "found")["spec"]["lifecycle"] == "retired"


RETURNING = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: returns}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: "registry.example/web:1"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy, namespace: returns}
spec:
  replicas: 1
  selector: {matchLabels: {app: legacy}}
  template:
    metadata: {labels: {app: legacy}}
    spec: {containers: [{name: app, image: "registry.example/legacy:1"}]}
"""


def test_an_item_retired_with_its_source_comes_back_with_it(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("create", "namespace", "returns")
    kubectl("apply", "-f", "-", input=RETURNING)
    kubectl(
        "apply",
        "-f",
        "-",
        input=_ci(
            "web",
            "returns",
            """  lifecycle: maintenance
  source: {apiVersion: apps/v1, kind: Deployment, name: web}""",
        )
        + "\n---\n"
        + _ci(
            "legacy",
            "returns",
            """  lifecycle: retired
  source: {apiVersion: apps/v1, kind: Deployment, name: legacy}""",
        ),
    )
    for name in ("web", "legacy"):
        wait_for(lambda n=name: _synced(kubectl, "returns", n), timeout=60, what=f"{name} synced")

    kubectl("delete", "deployment", "web", "legacy", "-n", "returns")

    def retired() -> dict[str, Any] | None:
        item = kubectl.json("get", "ci", "web", "-n", "returns")
        return item if item["spec"]["lifecycle"] == "retired" else None

    item = wait_for(retired, timeout=60, what="web retired with its Deployment")
    assert item["metadata"]["annotations"]["opsledger.io/retired-by"] == "operator"
    wait_for(
        lambda: (_record(devenv, "returns", "web") or {}).get("retiredReason"),
        timeout=30,
        what="the retired record",
    )
    wait_for(
        lambda: (_record(devenv, "returns", "legacy") or {}).get("retiredReason"),
        timeout=30,
        what="legacy's record to say its source is gone",
    )

    kubectl("apply", "-f", "-", input=RETURNING)

    def back() -> dict[str, Any] | None:
        record = _record(devenv, "returns", "web") or {}
        return record if record.get("spec", {}).get("lifecycle") == "maintenance" else None

    record = wait_for(back, timeout=60, what="web's record back in maintenance")
    assert "retiredReason" not in record
    item = kubectl.json("get", "ci", "web", "-n", "returns")
    assert item["spec"]["lifecycle"] == "maintenance"
    assert "opsledger.io/retired-by" not in (item["metadata"].get("annotations") or {})
    assert _events(kubectl, "returns", "web", "SourceRestored") >= 1

    # a person retired legacy: its Deployment coming back does not undo that
    wait_for(
        lambda: (
            (_record(devenv, "returns", "legacy") or {}).get("observed", {}).get("images")
            == {"app": "registry.example/legacy:1"}
            and "retiredReason" not in (_record(devenv, "returns", "legacy") or {})
        ),
        timeout=60,
        what="legacy observed again",
    )
    assert kubectl.json("get", "ci", "legacy", "-n", "returns")["spec"]["lifecycle"] == "retired"
    assert (_record(devenv, "returns", "legacy") or {})["spec"]["lifecycle"] == "retired"


def test_a_kind_of_the_same_name_in_another_api_group_is_another_source(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("create", "namespace", "groups")
    kubectl(
        "apply",
        "-f",
        "-",
        input=_ci(
            "other-web",
            "groups",
            "  source: {apiVersion: example.com/v1, kind: Deployment, name: web}",
        ),
    )
    wait_for(
        lambda: _condition(kubectl.json("get", "ci", "other-web", "-n", "groups"), "Ready"),
        timeout=60,
        what="other-web reconciled",
    )
    kubectl("create", "deployment", "web", "--image=registry.example/web:1", "-n", "groups")
    source = "  source: {apiVersion: apps/v1, kind: Deployment, name: web}"
    kubectl("apply", "-f", "-", input=_ci("web", "groups", source))
    item = wait_for(lambda: _synced(kubectl, "groups", "web"), timeout=60, what="web synced")
    ready = _condition(item, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("True", "Recorded")
    elsewhere = _condition(kubectl.json("get", "ci", "other-web", "-n", "groups"), "Ready")
    assert elsewhere is not None
    assert elsewhere["reason"] == "UnknownSourceKind"

    # the apps Deployment's changes reach the item that describes it, not the elder one
    kubectl("set", "image", "deployment/web", "web=registry.example/web:2", "-n", "groups")
    wait_for(
        lambda: (
            (_record(devenv, "groups", "web") or {}).get("observed", {}).get("images")
            == {"web": "registry.example/web:2"}
        ),
        timeout=60,
        what="the new image in web's record",
    )


RETIRING_SERVICE = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: svc-gone}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: "registry.example/web:1"}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-svc, namespace: svc-gone}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {name: web, namespace: svc-gone}
spec:
  source: {apiVersion: apps/v1, kind: Deployment, name: web}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {name: web-svc, namespace: svc-gone}
spec:
  source: {apiVersion: v1, kind: Service, name: web-svc}
"""

CANARY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-canary, namespace: svc-gone}
spec:
  replicas: 1
  selector: {matchLabels: {app: web, track: canary}}
  template:
    metadata: {labels: {app: web, track: canary}}
    spec: {containers: [{name: app, image: "registry.example/web:2"}]}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {name: web-canary, namespace: svc-gone}
spec:
  source: {apiVersion: apps/v1, kind: Deployment, name: web-canary}
"""


def test_a_retired_service_keeps_its_edges_and_is_left_alone(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("create", "namespace", "svc-gone")
    kubectl("apply", "-f", "-", input=RETIRING_SERVICE)
    exposes = [{"type": "exposes", "target": "web"}]
    wait_for(
        lambda: (
            kubectl.json("get", "ci", "web-svc", "-n", "svc-gone")
            .get("status", {})
            .get("relationships")
            == exposes
        ),
        timeout=60,
        what="web-svc exposes web",
    )

    kubectl("delete", "service", "web-svc", "-n", "svc-gone")
    wait_for(
        lambda: (_record(devenv, "svc-gone", "web-svc") or {}).get("retiredReason"),
        timeout=60,
        what="web-svc retired",
    )
    # The record is pushed first, the item's spec amended right after.
    item = wait_for(
        lambda: (
            (c := kubectl.json("get", "ci", "web-svc", "-n", "svc-gone"))["spec"].get("lifecycle")
            == "retired"
            and c
        ),
        timeout=30,
        what="web-svc's lifecycle retired",
    )
    assert item["status"]["relationships"] == exposes  # as they were when it retired
    assert (_record(devenv, "svc-gone", "web-svc") or {})["relationships"] == exposes

    # a new workload its old selector matches: the retired item is not reworked over and over
    kubectl("apply", "-f", "-", input=CANARY)
    wait_for(
        lambda: _synced(kubectl, "svc-gone", "web-canary"), timeout=60, what="web-canary synced"
    )

    def rolled_out() -> bool:  # its pods' status changes each bring the items a resync
        status = kubectl.json("get", "deployment", "web-canary", "-n", "svc-gone")["status"]
        return bool(status.get("availableReplicas")) and status.get("updatedReplicas") == (
            status.get("replicas")
        )

    wait_for(rolled_out, timeout=60, what="web-canary rolled out")

    def settled() -> bool:  # the canary's own follow-up reconciliations are over
        first = _item_syncs(devenv)
        time.sleep(2)
        return _item_syncs(devenv) == first

    wait_for(settled, timeout=40, what="the canary's reconciliations settled")

    def window() -> float:  # four recount intervals: a reworked item would take four syncs
        before = _item_syncs(devenv)
        time.sleep(8)
        return _item_syncs(devenv) - before

    # The count is of every item in the cluster (other modules' workloads still roll): the
    # quietest of three windows is the one that tells whether this item is reworked.
    assert min(window() for _ in range(3)) <= 1
    item = kubectl.json("get", "ci", "web-svc", "-n", "svc-gone")
    assert item["status"]["relationships"] == exposes


def test_two_clusters_pushing_to_one_remote_at_once_lose_nothing(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    operator.stop()  # two operators, each its own cluster name and namespace, share the remote
    clusters = ("east", "west")
    ports = free_ports(4)
    runs = []
    try:
        for i, cluster in enumerate(clusters):
            kubectl("create", "namespace", cluster)
            runs.append(
                OperatorProcess(devenv, tmp_path / f"{cluster}.log").start(
                    env={
                        "OPSLEDGER_CLUSTER": cluster,
                        "OPSLEDGER_NAMESPACES": cluster,
                        "OPSLEDGER_HEALTH_PORT": str(ports[2 * i]),
                        "OPSLEDGER_METRICS_PORT": str(ports[2 * i + 1]),
                        "OPSLEDGER_RECEIVER_PORT": "",  # one receiver port in the environment
                        "OPSLEDGER_CMDB_WORKDIR": str(tmp_path / f"{cluster}-cmdb"),
                    }
                )
            )
        manifests = [_ci(f"svc-{n:02d}", cluster) for n in range(15) for cluster in clusters]
        kubectl("apply", "-f", "-", input="\n---\n".join(manifests))

        def landed(cluster: str) -> bool:
            files = _git(devenv, "ls-tree", "-r", "--name-only", "main").split()
            prefix = f"clusters/{cluster}/{cluster}/configurationitems/"
            return sum(f.startswith(prefix) for f in files) == 15

        for cluster in clusters:
            wait_for(lambda c=cluster: landed(c), timeout=120, what=f"15 records of {cluster}")
        authors = set(_git(devenv, "log", "--format=%ae", "main").split())
        assert {"opsledger@east", "opsledger@west"} <= authors
    finally:
        for run in runs:
            run.stop()
        operator.start()
