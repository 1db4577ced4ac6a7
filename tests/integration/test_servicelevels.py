"""The ServiceLevel reconciler against a real Prometheus with backfilled history."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.history import (
    CounterSeries,
    create_blocks,
    prometheus_over,
    write_openmetrics,
)
from opsledger.devenv.paths import Toolbox
from tests.support import Kubectl, OperatorProcess, approve_proposal, proposed, wait_for

SERVICE_LEVEL = """
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {name: checkout, namespace: slo-live}
spec:
  service: checkout
  errorBudgetPolicy: {blockNormalChanges: true, minRemaining: 0.9}
  objectives:
  - name: availability
    objective: 99.9
    window: 30d
    sli:
      events:
        errorQuery: sum(rate(http_requests_total{service="checkout",code="500"}[{{.window}}]))
        totalQuery: sum(rate(http_requests_total{service="checkout"}[{{.window}}]))
"""


BROKEN_SERVICE_LEVEL = """
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {name: search, namespace: slo-live}
spec:
  service: search
  objectives:
  - name: latency
    objective: 99
    sli:
      events:
        # One expression (the webhook's parser accepts it) that Prometheus refuses to run.
        errorQuery: >-
          label_replace(sum(rate(http_requests_total{service="search"}[{{.window}}])),
          "a", "b", "", "(")
        totalQuery: sum(rate(http_requests_total{service="search"}[{{.window}}]))
"""


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next(
        (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None
    )


def _exported(devenv: DevEnvironment, prefix: str) -> float:
    """A sample from the operator's /metrics, by the start of its line."""
    port = devenv.ports()["operator-metrics"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    [line] = [x for x in lines if x.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


class History:
    """A Prometheus over generated history, which a test can stop."""

    def __init__(self, folder: Path) -> None:
        tools = Toolbox.locate()
        # The history runs up to (about) now, when the test starts: the operator measures now.
        end = int(time.time()) // 60 * 60

        def errors(t: float) -> float:
            return 0.2 if t > end - 3600 else 0.002  # a fast burn in the last hour

        write_openmetrics(
            folder / "h.om",
            "http_requests",
            [
                CounterSeries({"service": "checkout", "code": "200"}, lambda t: 10.0),
                CounterSeries({"service": "checkout", "code": "500"}, errors),
            ],
            start=end - 31 * 86400,
            end=end,
            step=60,
        )
        create_blocks(tools, folder / "h.om", folder / "tsdb")
        self.stack = ExitStack()
        self.url = self.stack.enter_context(prometheus_over(tools, folder / "tsdb"))

    def stop(self) -> None:
        self.stack.close()


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path)
    yield h
    h.stop()


def test_service_levels_are_measured_and_unknown_when_prometheus_stops(
    devenv: DevEnvironment,
    kubectl: Kubectl,
    operator: OperatorProcess,
    history: History,
    tmp_path: Path,
) -> None:
    operator.stop()
    measuring = OperatorProcess(devenv, tmp_path / "slo-operator.log").start(
        env={
            "OPSLEDGER_PROMETHEUS_URL": history.url,
            "OPSLEDGER_SLO_INTERVAL": "2",
        }
    )
    try:
        kubectl("create", "namespace", "slo-live")
        # beside it, another team's ServiceLevel whose SLI query is not PromQL (a "}" missing)
        kubectl("apply", "-f", "-", input=SERVICE_LEVEL + "---" + BROKEN_SERVICE_LEVEL)

        def measured() -> dict[str, Any] | None:
            obj = kubectl.json("get", "slo", "checkout", "-n", "slo-live")
            condition = _condition(obj, "Measured")
            return obj if condition and condition["status"] == "True" else None

        obj = wait_for(measured, timeout=60, what="checkout measured")
        [objective] = obj["status"]["objectives"]
        month_errors = 0.2 * 3600 + 0.002 * (30 * 86400 - 3600)
        month_ratio = month_errors / (month_errors + 10.0 * 30 * 86400)
        assert objective["sli"] == pytest.approx(100 * (1 - month_ratio), abs=1e-4)
        assert objective["errorBudgetRemaining"] == pytest.approx(1 - month_ratio / 0.001, rel=0.01)
        assert objective["burnRates"]["1h"] == pytest.approx(0.2 / 10.2 / 0.001, rel=0.02)
        assert objective["alerts"] == ["page"]
        exported = _exported(
            devenv,
            'opsledger_slo_error_budget_remaining{namespace="slo-live",objective="availability"',
        )
        assert exported == pytest.approx(objective["errorBudgetRemaining"])
        exhausted = _condition(obj, "BudgetExhausted")
        assert exhausted is not None
        assert exhausted["status"] == "True"
        assert "availability" in exhausted["message"]
        row = kubectl("get", "slo", "checkout", "-n", "slo-live", "--no-headers").split()
        assert row[1:3] == ["checkout", "99.9"]
        assert float(row[3]) == pytest.approx(objective["sli"])
        assert float(row[4]) == pytest.approx(objective["errorBudgetRemaining"])

        def event(reason: str) -> bool:
            events = kubectl.json(
                "get",
                "events",
                "-n",
                "slo-live",
                "--field-selector",
                "involvedObject.name=checkout",
            )["items"]
            return any(e["reason"] == reason for e in events)

        wait_for(lambda: event("BudgetExhausted"), timeout=30, what="a BudgetExhausted event")
        # the wrong query leaves only its own objective unmeasured, and says what Prometheus said
        broken = wait_for(
            lambda: (
                (
                    c := _condition(
                        kubectl.json("get", "slo", "search", "-n", "slo-live"), "Measured"
                    )
                )
                and c["status"] == "False"
                and c
            ),
            what="the broken ServiceLevel's Measured=False",
        )
        assert broken["reason"] == "InvalidQuery"
        assert "objective latency: Prometheus refused the query" in broken["message"]
        assert "invalid regular expression" in broken["message"]
        _the_fast_burn_opens_exactly_one_p1_incident(kubectl)
        _an_approved_normal_change_is_held_by_the_exhausted_budget(devenv, kubectl, tmp_path)

        history.stop()

        def unknown() -> dict[str, Any] | None:
            obj = kubectl.json("get", "slo", "checkout", "-n", "slo-live")
            condition = _condition(obj, "Measured")
            return condition if condition and condition["status"] == "False" else None

        condition = wait_for(unknown, timeout=60, what="Measured=False once Prometheus stops")
        assert condition["reason"] == "PrometheusUnavailable"
        assert "Health is unknown" in condition["message"]
        wait_for(lambda: event("PrometheusUnavailable"), timeout=30, what="a Warning event")
    finally:
        measuring.stop()
        operator.start()


def _the_fast_burn_opens_exactly_one_p1_incident(kubectl: Kubectl) -> None:
    def burn_incidents() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = kubectl.json("get", "incidents", "-n", "slo-live")["items"]
        return [i for i in items if i["spec"].get("origin", {}).get("type") == "sloBurn"]

    def prioritised() -> dict[str, Any] | None:
        found = burn_incidents()
        return found[0] if found and found[0].get("status", {}).get("priority") else None

    incident = wait_for(prioritised, timeout=60, what="an Incident opened by the fast burn")
    assert incident["status"]["priority"] == "P1"  # a page: high impact, high urgency
    assert incident["spec"]["service"] == "checkout"
    assert incident["spec"]["origin"]["reference"] == "checkout/availability"
    assert "1h/5m above 14.4×" in incident["spec"]["description"]
    time.sleep(6)  # three more evaluations, each still paging
    assert [i["metadata"]["name"] for i in burn_incidents()] == [incident["metadata"]["name"]]


def _an_approved_normal_change_is_held_by_the_exhausted_budget(
    devenv: DevEnvironment, kubectl: Kubectl, tmp_path: Path
) -> None:
    """The budget policy blocks normal changes: approved, inside a window, healthy checks, and
    still it waits, saying why."""
    kubectl(
        "apply",
        "-f",
        "-",
        input="""
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {name: checkout-api, namespace: slo-live}
spec: {service: checkout}
---
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {name: tune-checkout, namespace: slo-live}
spec:
  type: normal
  summary: Tune checkout's connection pool
  service: checkout
  targets: [checkout-api]
""",
    )

    proposed(kubectl, "slo-live", "tune-checkout")
    approve_proposal(
        devenv, tmp_path, "changes/test/slo-live/tune-checkout", ("Erin", "erin@example.com")
    )

    def held() -> dict[str, Any] | None:
        obj = kubectl.json("get", "change", "tune-checkout", "-n", "slo-live")
        gate = _condition(obj, "HealthGate")
        return obj if gate and gate["status"] == "False" else None

    obj = wait_for(held, timeout=60, what="the change held by the exhausted budget")
    assert obj["status"]["phase"] == "Scheduled"
    message = (_condition(obj, "HealthGate") or {})["message"]
    assert "error budget exhausted" in message
    assert "availability" in message
    time.sleep(3)
    assert kubectl.json("get", "change", "tune-checkout", "-n", "slo-live")["status"]["phase"] == (
        "Scheduled"
    )
