"""Alerts to incidents through the real chain: Prometheus rule → Alertmanager → operator → Incident.

Nothing is posted by hand in the main test: a real alerting rule on the operator's own metric
fires while a ConfigurationItem is not Ready (its source names a kind the cluster does not serve,
a typo), the real Alertmanager posts it (with the bearer token) to the operator's receiver, and
fixing the item resolves the alert and the Incident.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from opsledger.adapters.prometheus import Prometheus
from opsledger.devenv.environment import DevEnvironment
from opsledger.domain.changes import Health
from opsledger.models.change import ChangeSpec
from opsledger.services.change_health import measure_checks
from tests.support import Kubectl, OperatorProcess, wait_for

NAMESPACE = "alerting"
RULES = {
    "groups": [
        {
            "name": "alerting-test",
            "rules": [
                {
                    "alert": "CheckoutItemNotReady",
                    "expr": (
                        'opsledger_object_ready{kind="ConfigurationItem",'
                        f'namespace="{NAMESPACE}"}} == 0'
                    ),
                    "labels": {
                        "severity": "critical",
                        "service": "checkout",
                        "configuration_item": "{{ $labels.name }}",
                    },
                    "annotations": {"summary": "{{ $labels.name }} is not Ready"},
                }
            ],
        }
    ]
}
ITEM = """
apiVersion: v1
kind: Namespace
metadata: {{name: {namespace}}}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: checkout-api, namespace: {namespace}}}
spec:
  class: Workload
  service: checkout
  source: {{apiVersion: apps/v1, kind: {kind}, name: checkout-api}}
"""
DEPLOYMENT = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: checkout-api, namespace: {NAMESPACE}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: checkout-api}}}}
  template:
    metadata: {{labels: {{app: checkout-api}}}}
    spec:
      containers: [{{name: api, image: registry.example/checkout:1.0}}]
"""


def _reload(devenv: DevEnvironment) -> None:
    request = urllib.request.Request(f"{devenv.url('prometheus')}/-/reload", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture
def alert_rule(devenv: DevEnvironment) -> Iterator[None]:
    path = devenv.rules_dir / "alerting-test.yml"
    path.write_text(yaml.safe_dump(RULES))
    _reload(devenv)
    yield
    path.unlink()
    _reload(devenv)


def _incidents(kubectl: Kubectl) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl.json(
        "get", "incidents", "-n", NAMESPACE, "-l", "opsledger.io/alertname=CheckoutItemNotReady"
    )["items"]
    return items


def _post(devenv: DevEnvironment, body: bytes, token: str | None) -> int:
    port = devenv.ports()["operator-receiver"]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/alertmanager",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_firing_rule_opens_an_incident_once_and_its_resolution_resolves_it(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, alert_rule: None
) -> None:
    kubectl("apply", "-f", "-", input=ITEM.format(namespace=NAMESPACE, kind="Deploymnet"))

    incident = wait_for(
        lambda: next(iter(_incidents(kubectl)), None),
        timeout=120,
        interval=2,
        what="an Incident opened by Alertmanager",
    )
    spec = incident["spec"]
    assert spec["service"] == "checkout"
    assert spec["configurationItems"] == ["checkout-api"]
    assert spec["title"] == "CheckoutItemNotReady: checkout-api is not Ready"
    assert spec["origin"]["type"] == "alertmanager"
    opened = wait_for(
        lambda: (
            kubectl.json("get", "incident", incident["metadata"]["name"], "-n", NAMESPACE)
            if kubectl.json("get", "incident", incident["metadata"]["name"], "-n", NAMESPACE)
            .get("status", {})
            .get("priority")
            else None
        ),
        what="the incident's priority",
    )
    assert opened["status"]["priority"] == "P1"  # severity critical: high impact, high urgency

    # Alertmanager notifies the group again as the evaluation goes on; still one incident.
    time.sleep(15)
    assert len(_incidents(kubectl)) == 1

    # The fix: the source is immutable, so the item is replaced by one naming the right kind.
    kubectl("delete", "configurationitem", "checkout-api", "-n", NAMESPACE, "--wait")
    kubectl("apply", "-f", "-", input=DEPLOYMENT)
    kubectl("apply", "-f", "-", input=ITEM.format(namespace=NAMESPACE, kind="Deployment"))
    # the item is Ready again, so the rule goes quiet and Alertmanager sends the resolution

    def resolved() -> dict[str, Any] | None:
        items = _incidents(kubectl)
        done = [i for i in items if i.get("status", {}).get("state") == "Resolved"]
        return done[0] if done else None

    result = wait_for(resolved, timeout=120, interval=2, what="the incident resolved by the alert")
    assert "The alert CheckoutItemNotReady resolved at" in result["spec"]["resolution"]
    assert result["status"]["resolvedAt"]
    assert len(_incidents(kubectl)) == 1


def test_the_receiver_refuses_strangers_and_malformed_bodies(
    devenv: DevEnvironment, operator: OperatorProcess
) -> None:
    token = devenv.receiver_token_file.read_text().strip()
    notification = json.dumps({"status": "firing", "alerts": []}).encode()
    assert _post(devenv, notification, None) == 401
    assert _post(devenv, notification, "not-the-token") == 401
    assert _post(devenv, b"{not json", token) == 400
    assert _post(devenv, json.dumps({"status": "firing", "alerts": [{}]}).encode(), token) == 400
    assert _post(devenv, notification, token) == 200  # still alive and answering
    log = operator.output()
    assert "refused a malformed notification" in log
    assert "wrong or no bearer token" in log


def test_a_critical_alert_of_another_teams_service_does_not_hold_this_teams_change(
    devenv: DevEnvironment,
) -> None:
    """Two teams call their service `checkout`. A real alerting rule fires for team b's; team
    a's change passes the alert gate, team b's is held, naming the alert."""
    path = devenv.rules_dir / "alert-gate-test.yml"
    rule = {
        "alert": "CheckoutDown",
        "expr": "vector(1)",
        "labels": {"severity": "critical", "service": "checkout", "namespace": "team-b"},
    }
    path.write_text(yaml.safe_dump({"groups": [{"name": "alert-gate", "rules": [rule]}]}))
    _reload(devenv)
    prometheus = Prometheus(devenv.url("prometheus"))
    spec = ChangeSpec.model_validate(
        {"type": "normal", "summary": "Upgrade checkout", "service": "checkout"}
    )
    try:
        held = wait_for(
            lambda: (
                (v := asyncio.run(measure_checks(prometheus, spec, "team-b", pre=True))).health
                is Health.UNHEALTHY
                and v
            ),
            what="team b's alert to hold team b's change",
        )
        assert held.message == "critical alert firing: CheckoutDown"
        other = asyncio.run(measure_checks(prometheus, spec, "team-a", pre=True))
        assert other.health is Health.HEALTHY, other.message
    finally:
        path.unlink()
        _reload(devenv)
