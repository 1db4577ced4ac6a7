"""Incident correlation through the real operator: a recent change is the suspected cause, and
three incidents on one item make a problem, recorded in the CMDB and linked from the item."""

from __future__ import annotations

from typing import Any

from opsledger.devenv.environment import DevEnvironment
from tests.support import (
    Kubectl,
    OperatorProcess,
    finish_permit,
    remote_record,
    shop,
    wait_for,
    wait_for_event,
)

NS = "recurring"
HOTFIX = f"""
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: hotfix, namespace: {NS}}}
spec:
  type: emergency
  summary: Lower web's connection pool by hand
  service: shop
  targets: [web]
"""


def _incident(name: str) -> str:
    return f"""
apiVersion: opsledger.io/v1alpha1
kind: Incident
metadata: {{name: {name}, namespace: {NS}}}
spec:
  title: Web answers slowly
  service: shop
  configurationItems: [web]
"""


def _status(kubectl: Kubectl, kind: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = kubectl.json("get", kind, name, "-n", NS).get("status", {})
    return status


def test_a_recent_change_is_suspected_and_three_incidents_make_a_problem(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("apply", "-f", "-", input=shop(NS))
    kubectl("apply", "-f", "-", input=HOTFIX)
    finish_permit(kubectl, NS, "hotfix")

    kubectl("apply", "-f", "-", input=_incident("web-slow-1"))
    first = wait_for(
        lambda: _status(kubectl, "incident", "web-slow-1").get("suspectedCause"),
        what="the suspected cause",
    )
    assert first == "hotfix"
    assert _status(kubectl, "incident", "web-slow-1").get("problem") is None  # one is no pattern

    for name in ("web-slow-2", "web-slow-3"):
        kubectl("apply", "-f", "-", input=_incident(name))

    def linked() -> bool:
        return all(
            _status(kubectl, "incident", n).get("problem") == "ci-web"
            for n in ("web-slow-1", "web-slow-2", "web-slow-3")
        )

    wait_for(linked, what="all three incidents linked to the problem")
    assert _status(kubectl, "configurationitem", "web").get("problem") == "ci-web"
    path = f"clusters/test/{NS}/problems/ci-web.yaml"
    record = wait_for(lambda: remote_record(devenv, path), what="the problem record")
    assert record["kind"] == "ProblemRecord"
    assert (record["subjectKind"], record["subject"], record["state"]) == (
        "ConfigurationItem",
        "web",
        "Open",
    )
    assert [i["name"] for i in record["incidents"]] == ["web-slow-1", "web-slow-2", "web-slow-3"]

    kubectl(
        "patch",
        "incident",
        "web-slow-2",
        "-n",
        NS,
        "--type=merge",
        "-p",
        '{"spec":{"state":"Resolved","resolution":"Raised the pool back to 50",'
        '"rootCause":"The hotfix set the connection pool too small"}}',
    )

    def known_error() -> dict[str, Any] | None:
        doc = remote_record(devenv, path)
        return doc if doc and doc.get("state") == "KnownError" else None

    record = wait_for(known_error, what="the problem's known error")
    assert record["knownError"] == "The hotfix set the connection pool too small"
    assert record["workaround"] == "Raised the pool back to 50"
    wait_for_event(kubectl, NS, "web-slow-3", "RecurringIncident")
