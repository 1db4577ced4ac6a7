"""Incidents through the real operator: priority, SLA timers, the timeline, CMDB records."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from opsledger.devenv.environment import DevEnvironment
from tests.support import Kubectl, OperatorProcess, remote_record, wait_for

SETUP = """
apiVersion: v1
kind: Namespace
metadata: {name: oncall}
---
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {name: payments, namespace: oncall}
spec:
  service: payments
  incidentTargets:
  - {priority: P1, respond: 3s, resolve: 1h}
  - {priority: P2, respond: 30m, resolve: 8h}
"""


def _incident(name: str, impact: str, urgency: str) -> str:
    return f"""
apiVersion: opsledger.io/v1alpha1
kind: Incident
metadata: {{name: {name}, namespace: oncall}}
spec: {{title: Card payments fail, service: payments, impact: {impact}, urgency: {urgency}}}
"""


def _get(kubectl: Kubectl, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kubectl.json("get", "incident", name, "-n", "oncall")
    return result


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next(
        (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None
    )


def test_an_unanswered_p1_breaches_its_response_target(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("apply", "-f", "-", input=SETUP)
    kubectl("apply", "-f", "-", input=_incident("cards-down", "high", "high"))

    def breached() -> dict[str, Any] | None:
        condition = _condition(_get(kubectl, "cards-down"), "SLABreached")
        return condition if condition and condition["status"] == "True" else None

    condition = wait_for(breached, timeout=60, what="SLABreached once 3s pass unacknowledged")
    assert condition["message"].startswith("response target missed")
    status = _get(kubectl, "cards-down")["status"]
    assert status["priority"] == "P1"
    assert status["sla"]["responseBreached"] is True
    assert status["sla"]["resolutionBreached"] is False

    def warned() -> bool:
        events = kubectl.json(
            "get", "events", "-n", "oncall", "--field-selector", "involvedObject.name=cards-down"
        )["items"]
        return any(e["type"] == "Warning" and e["reason"] == "SLABreached" for e in events)

    wait_for(warned, timeout=30, what="a SLABreached Warning event")


def test_acknowledge_and_resolve_through_kubectl_patch(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    kubectl("apply", "-f", "-", input=SETUP)
    kubectl("apply", "-f", "-", input=_incident("refunds-slow", "high", "medium"))
    wait_for(
        lambda: _get(kubectl, "refunds-slow").get("status", {}).get("priority") == "P2",
        timeout=60,
        what="priority P2",
    )
    kubectl(
        "patch",
        "incident",
        "refunds-slow",
        "-n",
        "oncall",
        "--type=merge",
        "-p",
        '{"spec": {"state": "Acknowledged", "assignee": "ana"}}',
    )
    acked = wait_for(
        lambda: _get(kubectl, "refunds-slow")["status"].get("acknowledgedAt"),
        timeout=30,
        what="acknowledgedAt",
    )
    assert acked
    kubectl(
        "patch",
        "incident",
        "refunds-slow",
        "-n",
        "oncall",
        "--type=merge",
        "-p",
        '{"spec": {"state": "Resolved", "resolution": "Rolled back the gateway",'
        ' "rootCause": "Gateway 2.3 leaked connections"}}',
    )
    status = wait_for(
        lambda: (s := _get(kubectl, "refunds-slow")["status"]).get("resolvedAt") and s,
        timeout=30,
        what="resolvedAt",
    )
    assert [e["event"] for e in status["timeline"]] == [
        "Opened",
        "Assigned",
        "Acknowledged",
        "Resolved",
    ]
    assert status["timeline"][1]["detail"] == "ana"
    assert status["timeToAcknowledge"].endswith("s")
    assert status["timeToResolve"].endswith("s")
    assert status["sla"]["responseBreached"] is False
    breached = _condition(_get(kubectl, "refunds-slow"), "SLABreached")
    assert breached is not None
    assert breached["status"] == "False"

    path = "clusters/test/oncall/incidents/refunds-slow.yaml"

    def record() -> dict[str, Any] | None:
        doc = remote_record(devenv, path)
        return doc if doc and doc.get("state") == "Resolved" else None

    committed = wait_for(record, timeout=30, what="the resolved incident's record")
    assert committed["spec"]["rootCause"] == "Gateway 2.3 leaked connections"
    assert committed["priority"] == "P2"
    log = subprocess.run(
        # whole messages: a commit batching several records lists each with its reason
        ["git", "--git-dir", str(devenv.cmdb_remote), "log", "--format=%B", "main", "--", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Incident oncall/refunds-slow: Resolved (P2)" in log
    assert "Incident oncall/refunds-slow: Acknowledged (P2)" in log

    # everything the operator committed in this whole run passes the repository's own check
    checkout = tmp_path / "cmdb"
    subprocess.run(
        ["git", "clone", "--quiet", devenv.cmdb_remote.as_uri(), str(checkout)], check=True
    )
    validated = subprocess.run(
        [sys.executable, "-m", "opsledger", "cmdb", "validate", str(checkout)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validated.returncode == 0, validated.stderr
    assert "all valid" in validated.stdout
