"""KPIs at /metrics, scraped by the real Prometheus, agree with the Incidents and Changes.

The expected figures are counted here straight from `kubectl get -A` (the whole cluster, as the
operator counts), not with the operator's code.
"""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
from collections import Counter
from typing import Any

from opsledger.devenv.environment import DevEnvironment
from tests.support import Kubectl, OperatorProcess, finish_permit, shop, wait_for

NS = "kpis"
INCIDENTS = f"""
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: desk, namespace: {NS}}}
spec:
  service: desk
  incidentTargets: [{{priority: P1, respond: 2s, resolve: 1h}}]
---
apiVersion: opsledger.io/v1alpha1
kind: Incident
metadata: {{name: desk-down, namespace: {NS}}}
spec: {{title: The service desk is down, service: desk, impact: high, urgency: high}}
---
apiVersion: opsledger.io/v1alpha1
kind: Incident
metadata: {{name: desk-slow, namespace: {NS}}}
spec: {{title: The service desk is slow, service: desk, impact: medium, urgency: medium}}
---
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: restart-desk, namespace: {NS}}}
spec: {{type: emergency, summary: Restart the desk by hand, service: shop, targets: [web]}}
"""


def _prometheus(devenv: DevEnvironment, query: str) -> dict[tuple[tuple[str, str], ...], float]:
    url = f"{devenv.url('prometheus')}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:
        result = json.load(response)["data"]["result"]
    return {
        tuple(
            sorted(
                (k, v) for k, v in r["metric"].items() if k not in ("job", "instance", "cluster")
            )
        ): float(r["value"][1])
        for r in result
    }


def _objects(kubectl: Kubectl, kind: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl.json("get", kind, "-A")["items"]
    return items


def test_kpis_reach_prometheus_and_match_the_objects(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("apply", "-f", "-", input=shop(NS))
    kubectl("apply", "-f", "-", input=INCIDENTS)
    finish_permit(kubectl, NS, "restart-desk")
    kubectl(
        "patch",
        "incident",
        "desk-slow",
        "-n",
        NS,
        "--type=merge",
        "-p",
        '{"spec":{"state":"Resolved","resolution":"Restarted the desk"}}',
    )

    def expected() -> dict[str, Any]:
        incidents = _objects(kubectl, "incidents")
        changes = _objects(kubectl, "changes")
        opened = [i for i in incidents if i.get("status", {}).get("priority")]
        return {
            "open": Counter(
                i["status"]["priority"]
                for i in opened
                if i["spec"].get("state", "New") not in ("Resolved", "Closed")
            ),
            "breached": Counter(
                i["status"]["priority"]
                for i in opened
                if (i["status"].get("sla") or {}).get("responseBreached")
            ),
            "completed": Counter(
                c["spec"]["type"]
                for c in changes
                if c.get("status", {}).get("phase") == "Completed"
            ),
        }

    def agree() -> dict[str, Any] | None:
        want = expected()
        if want["completed"]["emergency"] < 1 or want["breached"]["P1"] < 1:
            return None  # the permit is not done or the P1 not yet overdue
        opened = _prometheus(devenv, "opsledger_incidents_open")
        breaches = _prometheus(devenv, 'opsledger_incident_sla_breaches{target="response"}')
        finished = _prometheus(devenv, 'opsledger_changes_finished{outcome="Completed"}')
        frequency = _prometheus(devenv, "opsledger_dora_deployment_frequency_per_day")
        got = {
            "open": {dict(k)["priority"]: v for k, v in opened.items() if v},
            "breached": {dict(k)["priority"]: v for k, v in breaches.items() if v},
            "completed": {dict(k)["type"]: v for k, v in finished.items() if v},
            "frequency": next(iter(frequency.values()), math.nan),
        }
        total = sum(want["completed"].values())
        if (
            got["open"] == dict(want["open"])
            and got["breached"] == dict(want["breached"])
            and got["completed"] == dict(want["completed"])
            and math.isclose(got["frequency"], total / 30)
        ):
            return got
        return None

    got = wait_for(agree, timeout=90, interval=3, what="Prometheus's KPIs equal to the objects'")
    assert got["open"]["P1"] >= 1  # desk-down is open
    ttr = _prometheus(devenv, 'opsledger_incident_mean_time_to_resolve_seconds{priority="P3"}')
    assert all(v >= 0 for v in ttr.values())
    assert _prometheus(devenv, "opsledger_dora_lead_time_seconds")
    assert _prometheus(devenv, "opsledger_dora_change_failure_ratio")
