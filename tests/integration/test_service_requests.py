"""Service requests end to end, tried as a namespace user would stretch them: against the real
API server calling the operator's webhooks, the real CMDB remote with the catalog and its
standard-change template pushed by a change manager, and a Deployment that really scales.

Jane has the edit role in `sr-shop` and may create ServiceRequests and Changes there; she may
not patch the Deployment herself through the guard (it is protected).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from opsledger.devenv.environment import DevEnvironment
from tests.support import (
    Kubectl,
    OperatorProcess,
    itsm,
    push_to_cmdb,
    remote_record,
    shop,
    wait_for,
    wait_for_webhooks,
    wait_guarded,
    webhook_settings,
)

NS = "sr-shop"
JANE = ("--as=jane", "--as-group=team-shop")
RBAC = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: jane-edits, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: jane}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: requester, namespace: {NS}}}
rules:
- apiGroups: [opsledger.io]
  resources: [servicerequests, changes]
  verbs: [get, list, watch, create, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: jane-requests, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: requester}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: jane}}]
"""
SCALE_ITEM = """
title: More replicas for the shop's web tier
description: Scale web within what the tier is sized for.
service: shop
parameters:
- {name: replicas, type: integer, min: 1, max: 10, description: How many pods}
- {name: note, type: string, maxLength: 80, required: false}
fulfilment:
  template: scale-web
  change:
    summary: "Scale web to {{ replicas }}"
    targets: [web]
    plan:
    - target: {apiVersion: apps/v1, kind: Deployment, name: web}
      patch: {spec: {replicas: "{{ replicas }}"}}
"""
# Looser than its template: the template still bounds what it may do.
LOOSE_ITEM = SCALE_ITEM.replace("max: 10,", "max: 50,").replace("web tier", "web tier, lots")
TEMPLATE = """
summary: Scale the shop's web tier
risk: low
targets: {services: [shop], names: [web]}
plan:
  kinds: [Deployment]
  allow: [{path: /spec/replicas, min: 1, max: 10}]
"""
LAPTOP_ITEM = """
title: A new laptop
service: shop
parameters:
- {name: model, type: string, values: [small, large]}
"""


CATALOG = {
    "catalog/scale-web.yaml": SCALE_ITEM,
    "catalog/scale-web-loose.yaml": LOOSE_ITEM,
    "catalog/new-laptop.yaml": LAPTOP_ITEM,
    "standard-changes/scale-web.yaml": TEMPLATE,
}


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
def catalog(
    devenv: DevEnvironment,
    kubectl: Kubectl,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    kubectl("apply", "-f", "-", input=shop(NS, replicas=1, item="protected: true"))
    kubectl("apply", "-f", "-", input=RBAC)
    kubectl(
        "patch",
        "servicelevel",
        "shop",
        "-n",
        NS,
        "--type=merge",
        "-p",
        '{"spec": {"requestTargets": [{"item": "scale-*", "fulfil": "1h"}, {"fulfil": "72h"}]}}',
    )
    wait_guarded(kubectl, NS, "web")
    work = tmp_path_factory.mktemp("catalog") / "cmdb"
    push_to_cmdb(devenv, work, CATALOG, "Catalog: scaling web, laptops")


def _request(name: str, item: str, parameters: str, extra: str = "") -> str:
    return f"""
apiVersion: opsledger.io/v1alpha1
kind: ServiceRequest
metadata: {{name: {name}, namespace: {NS}}}
spec:
  item: {item}
  parameters: {parameters}
{extra}"""


def _get(kubectl: Kubectl, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kubectl.json("get", "servicerequest", name, "-n", NS)
    return found


def _in(kubectl: Kubectl, name: str, *phases: str) -> dict[str, Any] | None:
    obj = _get(kubectl, name)
    return obj if obj.get("status", {}).get("phase") in phases else None


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def _replicas(kubectl: Kubectl) -> int:
    return int(kubectl.json("get", "deployment", "web", "-n", NS)["spec"]["replicas"])


def test_a_request_makes_its_standard_change_and_is_fulfilled_when_it_completes(
    devenv: DevEnvironment, kubectl: Kubectl, catalog: None
) -> None:
    """Jane asks for four replicas (naming Dana as the requester, which is not believed). The
    operator makes the standard change the item names, it fits the template, runs in the
    window and completes; the request is Fulfilled, within its target, and in the CMDB."""
    forged = "  requester: {username: dana}\n"
    kubectl(
        "apply",
        "-f",
        "-",
        *JANE,
        input=_request("more-web", "scale-web", "{replicas: '4'}", forged),
    )
    done = wait_for(
        lambda: _in(kubectl, "more-web", "Fulfilled", "Rejected", "Failed"),
        timeout=120,
        what="the request fulfilled",
    )
    status = done["status"]
    assert status["phase"] == "Fulfilled", _ready(done)
    assert done["spec"]["requester"]["username"] == "jane"
    assert status["requester"] == "jane"
    assert status["change"] == "req-more-web"
    assert status["parameters"] == {"replicas": 4}
    assert status["sla"]["breached"] is False
    assert [e["event"] for e in status["timeline"]][:2] == ["Submitted", "ChangeCreated"], status
    assert status["timeToFulfil"]
    assert _replicas(kubectl) == 4

    change = kubectl.json("get", "change", "req-more-web", "-n", NS)
    assert change["spec"]["type"] == "standard"
    assert change["spec"]["template"] == "scale-web"
    assert change["status"]["phase"] == "Completed"
    assert change["metadata"]["ownerReferences"][0]["uid"] == done["metadata"]["uid"]

    record = wait_for(
        lambda: (
            r
            if (r := remote_record(devenv, f"clusters/test/{NS}/servicerequests/more-web.yaml"))
            and r.get("phase") == "Fulfilled"
            else None
        ),
        what="the request's record in the CMDB",
    )
    assert record["kind"] == "ServiceRequestRecord"
    assert record["spec"]["requester"]["username"] == "jane"
    assert record["change"] == "req-more-web"

    # What was requested cannot be changed afterwards.
    edited = kubectl.run(
        "patch",
        "sr",
        "more-web",
        "-n",
        NS,
        "--type=merge",
        "-p",
        '{"spec": {"parameters": {"replicas": 9}}}',
        *JANE,
        check=False,
    )
    assert edited.returncode != 0
    assert "spec.item and spec.parameters are what was requested" in edited.stderr


def test_a_request_cannot_stretch_the_catalog_or_its_template(
    kubectl: Kubectl, catalog: None
) -> None:
    """Out of the item's bounds, a parameter the item does not have, an item looser than its
    template, an item that does not exist: each Rejected, saying why, and nothing is scaled."""
    before = _replicas(kubectl)
    cases = {
        "too-many": ("scale-web", "{replicas: 40}", "replicas: 40 is above the maximum 10"),
        "extra": (
            "scale-web",
            "{replicas: 2, image: 'evil:latest'}",
            "image: the item has no such parameter",
        ),
        "loose": (
            "scale-web-loose",
            "{replicas: 40}",
            "sets /spec/replicas to 40; the template allows a number from 1 to 10",
        ),
        "nothing": ("root-shell", "{}", "catalog/root-shell.yaml is not on the CMDB"),
    }
    manifests = "\n---".join(_request(n, item, p) for n, (item, p, _) in cases.items())
    kubectl("apply", "-f", "-", *JANE, input=manifests)
    for name, (_, _, says) in cases.items():
        refused = wait_for(
            lambda name=name: _in(kubectl, name, "Rejected", "Fulfilled"),
            what=f"request {name} judged",
        )
        assert refused["status"]["phase"] == "Rejected"
        assert says in _ready(refused)["message"], _ready(refused)
        assert kubectl.run("get", "change", f"req-{name}", "-n", NS, check=False).returncode != 0
    events = kubectl("get", "events", "-n", NS, "--field-selector", "reason=RequestRejected")
    assert "too-many" in events
    assert _replicas(kubectl) == before

    # Jane cannot borrow OpsLedger's say-so either: onBehalfOf is OpsLedger's to set.
    borrowed = kubectl.run(
        "apply",
        "-f",
        "-",
        *JANE,
        check=False,
        input=f"""
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: borrowed, namespace: {NS}}}
spec:
  type: normal
  summary: Scale web
  service: shop
  targets: [web]
  onBehalfOf: {{username: dana}}
""",
    )
    assert borrowed.returncode != 0
    assert "sets spec.onBehalfOf, which only OpsLedger sets" in borrowed.stderr


def test_an_item_without_a_change_waits_for_a_person(kubectl: Kubectl, catalog: None) -> None:
    def published() -> dict[str, Any] | None:
        level: dict[str, Any] = kubectl.json("get", "servicelevel", "shop", "-n", NS)
        return level if len(level.get("status", {}).get("catalog") or ()) == 3 else None

    level = wait_for(published, what="the catalog in the ServiceLevel's status")
    offered = {e["name"]: e["fulfilledBy"] for e in level["status"]["catalog"]}
    assert offered == {"new-laptop": "person", "scale-web": "change", "scale-web-loose": "change"}
    kubectl("apply", "-f", "-", *JANE, input=_request("laptop", "new-laptop", "{model: large}"))
    waiting = wait_for(
        lambda: _in(kubectl, "laptop", "WaitingForFulfilment"), what="the laptop request waiting"
    )
    assert "waiting for a person to fulfil it" in _ready(waiting)["message"]
    assert waiting["status"]["sla"]["fulfilBy"]  # the catch-all 72h target
    closing = kubectl.run(
        "patch",
        "sr",
        "laptop",
        "-n",
        NS,
        "--type=merge",
        "-p",
        '{"spec": {"state": "Fulfilled"}}',
        check=False,
    )
    assert closing.returncode != 0
    assert "needs spec.resolution" in closing.stderr
    kubectl(
        "patch",
        "sr",
        "laptop",
        "-n",
        NS,
        "--type=merge",
        "-p",
        '{"spec": {"state": "Fulfilled", "resolution": "Handed over at the front desk"}}',
    )
    done = wait_for(lambda: _in(kubectl, "laptop", "Fulfilled"), what="the laptop fulfilled")
    assert done["status"]["fulfilledAt"]
    assert done["status"]["timeline"][-1]["detail"] == "Handed over at the front desk"


def test_kubectl_itsm_offers_the_catalog_and_requests_from_it(
    devenv: DevEnvironment, kubectl: Kubectl, catalog: None
) -> None:
    """`kubectl itsm catalog` lists what the ServiceLevel offers; `request` refuses a value the
    item does not allow before sending anything, and sends one it does; `window` and
    `calendar` answer from the ServiceLevel."""
    wait_for(
        lambda: "scale-web" in itsm(devenv, "catalog", "-n", NS).stdout,
        what="the catalog through kubectl itsm",
    )
    offered = itsm(devenv, "catalog", "-n", NS).stdout
    assert "scale-web  (shop, by a standard change): More replicas for the shop's web tier" in (
        offered
    )
    assert "--set replicas=…  (integer; min 1; max 10)" in offered

    refused = itsm(devenv, "request", "scale-web", "--set", "replicas=12", "-n", NS)
    assert refused.returncode == 2
    assert "replicas: '12' is above the maximum 10" in refused.stderr
    sent = itsm(
        devenv, "request", "scale-web", "--set", "replicas=2", "--name", "by-plugin", "-n", NS
    )
    assert sent.returncode == 0, sent.stderr
    assert "servicerequest.opsledger.io/by-plugin requested in sr-shop" in sent.stdout
    done = wait_for(
        lambda: _in(kubectl, "by-plugin", "Fulfilled", "Rejected", "Failed"),
        timeout=120,
        what="the plugin's request fulfilled",
    )
    assert done["status"]["phase"] == "Fulfilled", _ready(done)
    assert _replicas(kubectl) == 2

    window = itsm(devenv, "window", "shop", "-n", NS)
    assert window.returncode == 0, window.stderr
    assert window.stdout.startswith("shop: allowed at ")  # a window opens every minute
    missing = itsm(devenv, "window", "billing", "-n", NS)
    assert missing.returncode == 1
    assert "no ServiceLevel for service billing in namespace sr-shop" in missing.stderr
    calendar = itsm(devenv, "calendar", "-n", NS, "--days", "1")
    assert calendar.returncode == 0, calendar.stderr
    assert "maintenance window of shop" in calendar.stdout
