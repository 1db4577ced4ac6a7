"""Change control that cannot be walked around, tried as a namespace user would: with
`kubectl --as`, against the real API server calling the operator's webhooks, the real CMDB
remote and real git merges.

Bob is a namespace user of `ctl`: he may create and edit Changes, patch their status (as a
careless RoleBinding would allow) and edit Deployments. Carol may also break glass. Alice is a
reviewer who merges in the CMDB repository.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsledger.devenv.environment import DevEnvironment
from opsledger.domain import changes
from opsledger.models.change import ChangeSpec
from tests.support import (
    Kubectl,
    OperatorProcess,
    approve_proposal,
    git,
    proposed,
    remote_record,
    shop,
    wait_for,
    wait_for_webhooks,
    wait_guarded,
    webhook_settings,
)

NS = "ctl"
BOB = ("--as=bob", "--as-group=team-shop")
CAROL = ("--as=carol", "--as-group=sre")
ALICE = ("Alice Approver", "alice@example.com")

RBAC = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: change-author, namespace: {NS}}}
rules:
- apiGroups: [opsledger.io]
  resources: [changes, configurationitems, servicelevels]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [opsledger.io]
  resources: [changes/status]
  verbs: [get, update, patch]
- apiGroups: [apps]
  resources: [deployments, deployments/scale]
  verbs: [get, list, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: change-authors, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: change-author}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: team-shop}}
- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: sre}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: break-glass, namespace: {NS}}}
rules:
- apiGroups: [opsledger.io]
  resources: [changes/emergency]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: break-glass, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: break-glass}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: sre}}
"""


@pytest.fixture(scope="module")
def operator(
    devenv: DevEnvironment, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(devenv, log).start(env=webhook_settings(devenv))
    wait_for_webhooks(Kubectl(devenv))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def shop_ns(kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl("apply", "-f", "-", input=shop(NS, replicas=1, item="protected: true"))
    kubectl("apply", "-f", "-", input=RBAC)
    wait_guarded(kubectl, NS, "web")


def _rfc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _change(name: str, body: str) -> str:
    return f"""
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: {name}, namespace: {NS}}}
spec:
  summary: {name}
  service: shop
{body}"""


LATER = f'  schedule: {{notBefore: "{_rfc(datetime.now(UTC) + timedelta(days=2))}"}}\n'
PLAN = """  plan:
  - target: {apiVersion: apps/v1, kind: Deployment, name: web}
    patch: {spec: {replicas: 2}}
"""


def _get(kubectl: Kubectl, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kubectl.json("get", "change", name, "-n", NS)
    return found


def _phase(kubectl: Kubectl, name: str, *phases: str) -> dict[str, Any] | None:
    obj = _get(kubectl, name)
    return obj if obj.get("status", {}).get("phase") in phases else None


def _approved_condition(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Approved")


def _approve(devenv: DevEnvironment, kubectl: Kubectl, tmp_path: Path, name: str) -> None:
    proposed(kubectl, NS, name)
    approve_proposal(devenv, tmp_path, f"changes/test/{NS}/{name}", ALICE)
    wait_for(lambda: _phase(kubectl, name, "Scheduled", "InProgress"), what=f"{name} approved")


def test_the_requester_is_who_the_api_server_says_and_stays_so(
    devenv: DevEnvironment, kubectl: Kubectl, shop_ns: None
) -> None:
    forged = _change(
        "who-asks", "  type: normal\n  targets: [web]\n  requester: {username: alice}\n"
    )
    kubectl.run("apply", "-f", "-", *BOB, input=forged)
    obj = _get(kubectl, "who-asks")
    assert obj["spec"]["requester"]["username"] == "bob"  # not alice: the API server said bob
    assert "team-shop" in obj["spec"]["requester"]["groups"]

    renamed = kubectl.run(
        "patch", "change", "who-asks", "-n", NS, *BOB, "--type=merge",
        "-p", '{"spec":{"requester":{"username":"alice","groups":[]}}}',
        check=False,
    )  # fmt: skip
    assert renamed.returncode != 0
    assert "spec.requester is who the API server says created the Change" in renamed.stderr
    assert _get(kubectl, "who-asks")["spec"]["requester"]["username"] == "bob"

    proposed(kubectl, NS, "who-asks")
    assert _get(kubectl, "who-asks")["status"]["requester"] == "bob"
    wide = kubectl("get", "change", "who-asks", "-n", NS, "-o", "wide")
    assert "REQUESTER" in wide
    assert "bob" in wide
    branch = f"changes/test/{NS}/who-asks"
    record = remote_record(devenv, ref=branch, path=f"clusters/test/{NS}/changes/who-asks.yaml")
    assert record["spec"]["requester"]["username"] == "bob"
    assert record["metadata"]["uid"] == obj["metadata"]["uid"]
    message = git("--git-dir", str(devenv.cmdb_remote), "log", "-1", "--format=%B", branch)
    assert "**Requester:** bob (groups: team-shop)" in message


def test_an_approved_change_is_frozen_and_its_status_is_the_operators_alone(
    devenv: DevEnvironment, kubectl: Kubectl, shop_ns: None, tmp_path: Path
) -> None:
    kubectl.run(
        "apply",
        "-f",
        "-",
        *BOB,
        input=_change("scale-web", "  type: normal\n  targets: [web]\n" + LATER + PLAN),
    )
    _approve(devenv, kubectl, tmp_path, "scale-web")

    widened = kubectl.run(
        "patch", "change", "scale-web", "-n", NS, *BOB, "--type=json",
        "-p", '[{"op":"replace","path":"/spec/plan/0/patch/spec/replicas","value":9}]',
        check=False,
    )  # fmt: skip
    assert widened.returncode != 0
    assert "validate.opsledger.io" in widened.stderr
    assert "it was approved by Alice Approver <alice@example.com> exactly as it stands" in (
        widened.stderr
    )
    assert "cancel it (spec.cancelled: true) and propose a new Change" in widened.stderr
    assert _get(kubectl, "scale-web")["spec"]["plan"][0]["patch"]["spec"]["replicas"] == 2

    # Bob may patch changes/status (RBAC allows it), but the phase is the operator's word.
    forged = kubectl.run(
        "patch", "change", "scale-web", "-n", NS, *BOB, "--subresource=status", "--type=merge",
        "-p", '{"status":{"phase":"InProgress"}}',
        check=False,
    )  # fmt: skip
    assert forged.returncode != 0
    assert "only the OpsLedger operator writes a Change's status" in forged.stderr
    assert "'bob' may not" in forged.stderr
    assert _get(kubectl, "scale-web")["status"]["phase"] == "Scheduled"
    # The guard still sees no change in progress: the protected Deployment stays shut.
    scaled = kubectl.run("scale", "deployment/web", "--replicas=5", "-n", NS, *BOB, check=False)
    assert scaled.returncode != 0
    assert "guard-subresources.opsledger.io" in scaled.stderr

    # Cancelling is the one edit an approved change takes.
    kubectl(
        "patch", "change", "scale-web", "-n", NS, *BOB, "--type=merge",
        "-p", '{"spec":{"cancelled":true}}',
    )  # fmt: skip
    wait_for(lambda: _phase(kubectl, "scale-web", "Cancelled"), what="the change cancelled")


def test_a_running_changes_plan_cannot_be_edited(
    devenv: DevEnvironment, kubectl: Kubectl, shop_ns: None, tmp_path: Path
) -> None:
    kubectl.run(
        "apply", "-f", "-", *BOB, input=_change("by-hand", "  type: normal\n  targets: [web]\n")
    )
    _approve(devenv, kubectl, tmp_path, "by-hand")
    wait_for(
        lambda: _phase(kubectl, "by-hand", "InProgress"), timeout=90, what="the permit running"
    )
    added = kubectl.run(
        "patch", "change", "by-hand", "-n", NS, *BOB, "--type=merge",
        "-p", '{"spec":{"plan":[{"target":{"apiVersion":"apps/v1","kind":"Deployment",'
        '"name":"web"},"patch":{"spec":{"replicas":7}}}]}}',
        check=False,
    )  # fmt: skip
    assert added.returncode != 0
    assert "is InProgress: it was approved by Alice Approver" in added.stderr
    assert kubectl.json("get", "deployment", "web", "-n", NS)["spec"]["replicas"] != 7
    # The permit lets its requester work on web; not anyone else who may edit Deployments.
    carol = kubectl.run("scale", "deployment/web", "--replicas=4", "-n", NS, *CAROL, check=False)
    assert carol.returncode != 0
    assert "only its requester, bob, may work on its targets" in carol.stderr
    kubectl("scale", "deployment/web", "--replicas=3", "-n", NS, *BOB)
    assert kubectl.json("get", "deployment", "web", "-n", NS)["spec"]["replicas"] == 3
    kubectl("patch", "change", "by-hand", "-n", NS, "--type=merge", "-p", '{"spec":{"done":true}}')
    wait_for(lambda: _phase(kubectl, "by-hand", "Completed"), timeout=60, what="the permit done")


def test_a_change_deleted_and_created_again_is_proposed_afresh(
    devenv: DevEnvironment, kubectl: Kubectl, shop_ns: None, tmp_path: Path
) -> None:
    manifest = _change("again", "  type: normal\n  targets: [web]\n" + LATER)
    kubectl.run("apply", "-f", "-", *BOB, input=manifest)
    _approve(devenv, kubectl, tmp_path, "again")
    first = _get(kubectl, "again")
    kubectl("delete", "change", "again", "-n", NS)
    kubectl.run("apply", "-f", "-", *BOB, input=manifest)
    second = _get(kubectl, "again")
    assert second["metadata"]["uid"] != first["metadata"]["uid"]

    commit = proposed(kubectl, NS, "again")
    assert commit != first["status"]["approval"]["proposalCommit"]
    obj = _get(kubectl, "again")
    assert obj["status"]["phase"] == "PendingApproval"
    assert _approved_condition(obj)["reason"] == "AwaitingApproval"
    # The old merge is still on main, with the old object's uid: it approves nothing.
    record = remote_record(devenv, f"clusters/test/{NS}/changes/again.yaml")
    assert record["metadata"]["uid"] == first["metadata"]["uid"]


def test_breaking_glass_needs_the_emergency_right_and_is_reviewed_afterwards(
    devenv: DevEnvironment, kubectl: Kubectl, shop_ns: None, tmp_path: Path
) -> None:
    fire = _change("fire", "  type: emergency\n  targets: [web]\n")
    refused = kubectl.run("apply", "-f", "-", *BOB, input=fire, check=False)
    assert refused.returncode != 0
    assert "needs the break-glass right, 'create' on 'changes/emergency'" in refused.stderr
    assert "'bob' does not have" in refused.stderr
    assert kubectl.run("get", "change", "fire", "-n", NS, check=False).returncode != 0

    kubectl.run("apply", "-f", "-", *CAROL, input=fire)
    running = wait_for(lambda: _phase(kubectl, "fire", "InProgress"), what="the emergency started")
    assert running["spec"]["requester"]["username"] == "carol"
    assert running["status"]["reviewRequired"] is True

    # Once it has ended, its post-implementation review is proposed; merging it closes it.
    kubectl("patch", "change", "fire", "-n", NS, "--type=merge", "-p", '{"spec":{"done":true}}')

    def review_proposed() -> dict[str, Any] | None:
        obj = _get(kubectl, "fire")
        review = next(
            (c for c in obj["status"].get("conditions", []) if c["type"] == "Reviewed"), {}
        )
        return obj if review.get("reason") == "AwaitingReview" else None

    ended = wait_for(review_proposed, timeout=60, what="the review proposed")
    assert ended["status"]["phase"] == "Completed"
    assert ended["status"]["reviewRequired"] is True
    branch = f"reviews/test/{NS}/fire"
    assert ended["status"]["review"]["branch"] == branch
    record = remote_record(devenv, ref=branch, path=f"clusters/test/{NS}/reviews/fire.yaml")
    assert record["requester"] == "carol"
    assert record["metadata"]["uid"] == ended["metadata"]["uid"]
    approve_proposal(devenv, tmp_path, branch, ALICE)
    reviewed = wait_for(
        lambda: (
            _get(kubectl, "fire")["status"].get("reviewRequired") is False and _get(kubectl, "fire")
        ),
        timeout=60,
        what="the review merged",
    )
    assert reviewed["status"]["review"]["reviewedAt"]


SECRETS = ("S3cr3t-planted-1", "S3cr3t-planted-2", "S3cr3t-planted-3")


def test_secrets_planted_in_a_plan_an_annotation_and_an_incident_do_not_leave_the_cluster(
    devenv: DevEnvironment,
    kubectl: Kubectl,
    operator: OperatorProcess,
    shop_ns: None,
    tmp_path: Path,
) -> None:
    plan = f"""  plan:
  - target: {{apiVersion: apps/v1, kind: Deployment, name: web}}
    patchType: json
    patch:
    - {{op: add, path: /metadata/annotations/example.com~1note, value: {SECRETS[1]}}}
    - {{op: add, path: /spec/template/spec/containers/0/env/-,
       value: {{name: MYSQL_PWD, value: {SECRETS[0]}}}}}
"""
    kubectl.run(
        "apply",
        "-f",
        "-",
        *BOB,
        input=_change("leaky", "  type: normal\n  targets: [web]\n" + plan),
    )
    kubectl(
        "apply", "-f", "-",
        input=f"""
apiVersion: opsledger.io/v1alpha1
kind: Incident
metadata: {{name: leak-report, namespace: {NS}}}
spec:
  title: The database refuses the shop
  description: "since this morning the db password={SECRETS[2]} is refused"
  service: shop
  impact: low
  urgency: low
""",
    )  # fmt: skip
    _approve(devenv, kubectl, tmp_path, "leaky")
    done = wait_for(
        lambda: _phase(kubectl, "leaky", "Completed", "Failed", "RolledBack"),
        timeout=90,
        what="the leaky change carried out",
    )
    assert done["status"]["phase"] == "Completed", done["status"]["transitions"][-1]
    env = kubectl.json("get", "deployment", "web", "-n", NS)["spec"]["template"]["spec"]
    assert {"name": "MYSQL_PWD", "value": SECRETS[0]} in env["containers"][0]["env"]  # it ran

    def recorded() -> str | None:
        history = git("--git-dir", str(devenv.cmdb_remote), "log", "-p", "--all")
        item = f"clusters/test/{NS}/configurationitems/web.yaml"
        incident = f"clusters/test/{NS}/incidents/leak-report.yaml"
        change = f"clusters/test/{NS}/changes/leaky.yaml"
        done = all(p in history for p in (item, incident, change)) and "MYSQL_PWD" in history
        return history if done else None

    history = wait_for(recorded, timeout=60, what="the item, incident and change records")
    events = kubectl("get", "events", "-n", NS, "-o", "json")
    statuses = str(
        [o.get("status") for o in kubectl.json("get", "change,incident,ci", "-n", NS)["items"]]
    )
    for secret in SECRETS:
        assert secret not in history, f"{secret} reached the CMDB's history"
        assert secret not in events, f"{secret} reached an Event"
        assert secret not in statuses, f"{secret} reached a status"
        assert secret not in operator.output(), f"{secret} reached the operator's log"
    assert "MYSQL_PWD" in history  # the name is recorded, its value is a fingerprint
    assert "<redacted " in history


def test_a_status_forged_while_the_operator_is_down_runs_nothing(
    kubectl: Kubectl, operator: OperatorProcess, shop_ns: None
) -> None:
    """With the operator (and so its webhooks) down, Bob may write changes/status: he sets his
    unapproved change InProgress with an approval carrying the right hash. Back up, the operator
    reads the approval back from the CMDB before the first step and applies nothing."""
    plan = """  plan:
  - target: {apiVersion: apps/v1, kind: Deployment, name: web}
    patch: {spec: {replicas: 6}}
"""
    kubectl.run(
        "apply",
        "-f",
        "-",
        *BOB,
        input=_change("forged", "  type: normal\n  targets: [web]\n" + LATER + plan),
    )
    proposed(kubectl, NS, "forged")
    spec = ChangeSpec.model_validate(_get(kubectl, "forged")["spec"])
    operator.stop()
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        assert kubectl.run("get", kind, "opsledger", check=False).returncode != 0
    forged = {
        "status": {
            "phase": "InProgress",
            "approval": {
                "approver": "alice",
                "approvedAt": "2026-12-01T00:00:00Z",
                "specHash": changes.spec_hash(spec),
                "commit": "0" * 40,
            },
            "execution": {"startedAt": "2026-12-01T00:00:00Z", "appliedSteps": 0, "prior": []},
        }
    }
    kubectl(
        "patch", "change", "forged", "-n", NS, *BOB, "--subresource=status", "--type=merge",
        "-p", json.dumps(forged),
    )  # fmt: skip
    operator.start()
    failed = wait_for(
        lambda: _phase(kubectl, "forged", "Failed", "Verifying", "Completed"),
        timeout=90,
        what="the forged change stopped",
    )
    assert failed["status"]["phase"] == "Failed"
    assert _approved_condition(failed)["reason"] == "ApprovalVoided"
    assert "not what the CMDB holds" in failed["status"]["transitions"][-1]["reason"]
    assert kubectl.json("get", "deployment", "web", "-n", NS)["spec"]["replicas"] != 6


def test_a_query_reaching_out_of_its_place_in_a_batch_is_refused(
    kubectl: Kubectl, shop_ns: None
) -> None:
    """Bob's queries are batched with other teams'. Texts that are not one PromQL expression on
    their own (they would close the batch's parenthesis and add series under another team's
    key) are refused by the webhook with the parser's reason, on each kind that carries one."""
    escape = 'vector(0)) or label_replace(vector(100), "slo", "pay/pay/availability", "", "") or (x'
    manifests = {
        "ServiceLevel": f"""
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: sneaky, namespace: {NS}}}
spec:
  service: sneaky
  objectives:
  - name: availability
    objective: 99.9
    window: 30d
    sli: {{events: {{errorQuery: '{escape}', totalQuery: 'vector(1)'}}}}
""",
        "ConfigurationItem": f"""
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: sneaky, namespace: {NS}}}
spec:
  class: Service
  service: sneaky
  monitoring: {{checks: [{{name: errors, query: '{escape}', degraded: {{above: 1}}}}]}}
""",
        "Change": _change(
            "sneaky",
            f"""  type: normal
  summary: Look healthy
  service: shop
  checks: {{pre: [{{name: errors, query: '{escape}', below: 1}}]}}""",
        ),
    }
    for kind, manifest in manifests.items():
        result = kubectl.run("apply", *BOB, "-f", "-", input=manifest, check=False)
        assert result.returncode != 0, kind
        assert "is not one PromQL expression: unexpected right parenthesis" in result.stderr, kind
        assert "denied the request" in result.stderr, kind
    for kind in manifests:
        gone = kubectl.run("get", kind.lower(), "sneaky", "-n", NS, check=False)
        assert gone.returncode != 0, kind
