"""`opsledger run` against the real API server: Ready conditions, Events, metrics, restarts."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_api_client import PrometheusConnect

from opsledger.adapters import kube
from opsledger.devenv.environment import DevEnvironment
from tests.support import Kubectl, OperatorProcess, wait_for

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("incident", "change", "servicelevel", "configurationitem")


def _ready(kubectl: Kubectl, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    obj = kubectl.json("get", kind, name, "-n", namespace)
    for condition in obj.get("status", {}).get("conditions", []):
        if condition["type"] == "Ready":
            return {**condition, "generation": obj["metadata"]["generation"]}
    return None


def _wait_ready(
    kubectl: Kubectl, kind: str, name: str, namespace: str, status: str, *, generation: int = 1
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        ready = _ready(kubectl, kind, name, namespace)
        if ready and ready["status"] == status and ready["observedGeneration"] == generation:
            return ready
        return None

    result: dict[str, Any] = wait_for(check, timeout=60, what=f"{kind}/{name} Ready={status}")
    return result


def test_the_examples_become_ready(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("apply", "-f", str(ROOT / "examples"))
    names = {
        "incident": "checkout-slow",
        "change": "web-1-5-0",
        "servicelevel": "shop",
        "configurationitem": "web",
    }
    for kind in KINDS:
        ready = _wait_ready(kubectl, kind, names[kind], "shop", "True")
        # A Change's Ready reason is its phase: the example waits for its approval.
        expected = {"configurationitem": "Recorded", "change": "PendingApproval"}
        assert ready["reason"] == expected.get(kind, "Accepted")

    def proposed_event() -> bool:
        events = kubectl.json(
            "get", "events", "-n", "shop", "--field-selector", "involvedObject.name=web-1-5-0"
        )["items"]
        return any(e["type"] == "Normal" and e["reason"] == "PendingApproval" for e in events)

    wait_for(proposed_event, timeout=30, what="a Normal PendingApproval event on the Change")
    assert (
        kubectl.json("get", "incident", "checkout-slow", "-n", "shop")["status"]["priority"] == "P2"
    )
    assert kubectl.json("get", "ci", "web", "-n", "shop")["status"]["class"] == "Workload"
    table = kubectl("get", "itsm", "-n", "shop")
    rows = [line for line in table.splitlines() if line.strip() and "/" in line.split()[0]]
    assert len(rows) == 4
    assert all(" True " in row for row in rows), table
    # opsledger_object_ready follows Ready for every kind, as the README's sample shows
    port = devenv.ports()["operator-metrics"]

    def gauges() -> list[str] | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        wanted = [
            f'opsledger_object_ready{{kind="{kind}",name="{name}",namespace="shop"}} 1.0'
            for kind, name in (
                ("ServiceLevel", "shop"),
                ("Change", "web-1-5-0"),
                ("Incident", "checkout-slow"),
                ("ConfigurationItem", "web"),
            )
        ]
        return wanted if all(line in text.splitlines() for line in wanted) else None

    wait_for(gauges, timeout=30, what="opsledger_object_ready 1 for the four examples")


def test_an_invalid_spec_is_reported_in_ready_an_event_and_an_alert_then_recovers(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("create", "namespace", "bad-specs")
    manifest = """
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {name: mars, namespace: bad-specs}
spec:
  service: mars
  maintenanceWindows: [{schedule: "0 22 * * 6", duration: 4h, timeZone: Mars/Olympus}]
"""
    kubectl("apply", "-f", "-", input=manifest)
    ready = _wait_ready(kubectl, "servicelevel", "mars", "bad-specs", "False")
    assert ready["reason"] == "InvalidSpec"
    assert "spec.maintenanceWindows.0.timeZone" in ready["message"]
    assert "Mars/Olympus" in ready["message"]

    def warning() -> list[dict[str, Any]]:
        events = kubectl.json(
            "get", "events", "-n", "bad-specs", "--field-selector", "involvedObject.name=mars"
        )["items"]
        return [e for e in events if e["type"] == "Warning" and e["reason"] == "InvalidSpec"]

    [event] = wait_for(warning, timeout=30, what="an InvalidSpec Warning event")
    assert "spec.maintenanceWindows.0.timeZone" in event["message"]

    # Prometheus scrapes opsledger_object_ready == 0 and the project's rule starts firing.
    prometheus = PrometheusConnect(url=devenv.url("prometheus"), disable_ssl=True)

    def alert() -> list[dict[str, Any]]:
        alerts = prometheus.get_current_metric_value(
            'ALERTS{alertname="OpsLedgerObjectNotReady",name="mars",namespace="bad-specs"}'
        )
        return [a for a in alerts if a["metric"]["alertstate"] in ("pending", "firing")]

    [firing] = wait_for(alert, timeout=60, what="OpsLedgerObjectNotReady for mars")
    assert firing["metric"]["kind"] == "ServiceLevel"

    kubectl(
        "patch",
        "servicelevel",
        "mars",
        "-n",
        "bad-specs",
        "--type=json",
        "-p",
        '[{"op": "replace", "path": "/spec/maintenanceWindows/0/timeZone", '
        '"value": "Europe/Berlin"}]',
    )
    recovered = _wait_ready(kubectl, "servicelevel", "mars", "bad-specs", "True", generation=2)
    assert recovered["reason"] == "Accepted"


def test_metrics_are_served_and_scraped_by_prometheus(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("apply", "-f", str(ROOT / "examples"))
    _wait_ready(kubectl, "servicelevel", "shop", "shop", "True")
    port = devenv.ports()["operator-metrics"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'opsledger_object_ready{kind="ServiceLevel",name="shop",namespace="shop"} 1.0' in text

    prometheus = PrometheusConnect(url=devenv.url("prometheus"), disable_ssl=True)

    def scraped() -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = prometheus.custom_query(
            'opsledger_object_ready{job="opsledger",kind="ServiceLevel",namespace="shop",name="shop"}'
        )
        return result

    [sample] = wait_for(scraped, timeout=60, what="Prometheus to scrape the operator")
    assert sample["value"][1] == "1"
    assert sample["metric"]["cluster"] == "test"


def test_a_restart_keeps_conditions_as_they_were(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    kubectl("apply", "-f", str(ROOT / "examples"))
    before = _wait_ready(kubectl, "change", "web-1-5-0", "shop", "True")
    operator.stop()
    restarted = OperatorProcess(devenv, tmp_path / "restarted.log").start()
    try:
        wait_for(
            lambda: "resume" in restarted.output() or "Handler" in restarted.output(),
            timeout=30,
            what="the restarted operator to resume",
        )
        after = _ready(kubectl, "change", "web-1-5-0", "shop")
        assert after is not None
        assert after["lastTransitionTime"] == before["lastTransitionTime"]
        assert after["status"] == "True"
    finally:
        restarted.stop()
        operator.start()


@pytest.mark.usefixtures("crds")
def test_the_operator_names_missing_crds(devenv: DevEnvironment) -> None:
    api = kube.api_client(str(devenv.kubeconfig))
    try:
        names = ["changes.opsledger.io", "widgets.opsledger.io"]
        assert kube.missing_crds(api, names) == ["widgets.opsledger.io"]
    finally:
        api.close()
