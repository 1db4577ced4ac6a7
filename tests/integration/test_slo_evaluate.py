"""SLO evaluation against a real Prometheus holding history backfilled with promtool.

The expected numbers are computed here from the generator's rates (exact integrals), not from
Prometheus; rate() only sees samples inside each window, so burn rates agree within 2 %.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from opsledger.adapters.prometheus import Prometheus
from opsledger.devenv.history import (
    CounterSeries,
    create_blocks,
    prometheus_over,
    write_openmetrics,
)
from opsledger.devenv.paths import Toolbox
from opsledger.domain.budget_exclusions import COMPLETED, Exclusion, intervals
from opsledger.domain.slo import BURN_WINDOWS, Evaluation, seconds
from opsledger.domain.slo_rules import RuleObjective, rule_groups
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.services.servicelevel import ServiceLevelRef, evaluate_service_levels
from tests.support import availability_slo, opsledger

NOW = (int(time.time()) // 3600) * 3600 - 3 * 3600  # the end of the history, on the hour
OK_RATE = 10.0
# shop: 0.02 % errors for a month, then a burst of 2 % for the last hour (a fast burn: page)
# pay: ~1.5 % errors for the last two days on a 99 % / 28d objective (a slow burn: ticket)
# failover: 0.05 % errors, and a third for the hour of a planned failover (NOW-5h to NOW-4h)
FAILOVER = (NOW - 5 * 3600, NOW - 4 * 3600)
RATES = {
    "shop": lambda t: 0.2 if t > NOW - 3600 else 0.002,
    "pay": lambda t: 0.15 if t > NOW - 2 * 86400 else 0.0005,
    "failover": lambda t: 5.0 if FAILOVER[0] < t <= FAILOVER[1] else 0.005,
}


def _integral(rate: object, start: float, end: float, step: float = 60) -> float:
    total, t = 0.0, start
    while t < end:
        total += rate(t + step / 2) * step  # type: ignore[operator]
        t += step
    return total


def expected_ratio(service: str, window: str) -> float:
    start = NOW - seconds(window)
    errors = _integral(RATES[service], start, NOW)
    return errors / (errors + OK_RATE * (NOW - start))


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tools = Toolbox.locate()
    folder = tmp_path_factory.mktemp("history")
    series = []
    for service, rate in RATES.items():
        series += [
            CounterSeries({"service": service, "code": "200"}, lambda t: OK_RATE),
            CounterSeries({"service": service, "code": "500"}, rate),
        ]
    write_openmetrics(
        folder / "history.om", "http_requests", series, start=NOW - 31 * 86400, end=NOW, step=60
    )
    create_blocks(tools, folder / "history.om", folder / "tsdb")
    with prometheus_over(tools, folder / "tsdb") as url:
        yield url


SHOP = availability_slo()


def _spec(service: str, objective: float, window: str) -> ServiceLevelSpec:
    sel = f'service="{service}"'
    win = "{{.window}}"
    return ServiceLevelSpec.model_validate(
        {
            "service": service,
            "objectives": [
                {
                    "name": "availability",
                    "objective": objective,
                    "window": window,
                    "sli": {
                        "events": {
                            "errorQuery": f'rate(http_requests_total{{{sel},code="500"}}[{win}])',
                            "totalQuery": f"rate(http_requests_total{{{sel}}}[{win}])",
                        }
                    },
                }
            ],
        }
    )


def test_slo_evaluate_reports_what_the_history_implies(prometheus_url: str, tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(SHOP)
    at = datetime.fromtimestamp(NOW, UTC).isoformat().replace("+00:00", "Z")
    result = opsledger(
        "slo", "evaluate", str(manifest), "--prometheus", prometheus_url, "--at", at, "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    [shop] = json.loads(result.stdout)["objectives"]
    budget = 0.001
    month = expected_ratio("shop", "30d")
    assert shop["name"] == "availability"
    assert shop["sli"] == pytest.approx(100 * (1 - month), abs=1e-4)
    assert shop["errorBudgetRemaining"] == pytest.approx(1 - month / budget, rel=0.01)
    for window in BURN_WINDOWS:
        assert shop["burnRates"][window] == pytest.approx(
            expected_ratio("shop", window) / budget, rel=0.02
        ), window
    assert shop["burnRates"]["1h"] > 14.4
    assert shop["alerts"] == ["page"]


def test_all_objectives_of_all_service_levels_take_one_query(prometheus_url: str) -> None:
    prometheus = Prometheus(prometheus_url)
    refs = [
        ServiceLevelRef("shop", "shop", _spec("shop", 99.9, "30d")),
        ServiceLevelRef("pay", "pay", _spec("pay", 99.0, "28d")),
    ]
    results = evaluate_service_levels(prometheus, refs, datetime.fromtimestamp(NOW, UTC))
    assert prometheus.queries == 1
    [pay] = results[("pay", "pay")]
    budget = 0.01
    assert pay.error_budget_remaining == pytest.approx(
        1 - expected_ratio("pay", "28d") / budget, rel=0.01
    )
    assert pay.burn_rates["1d"] == pytest.approx(expected_ratio("pay", "1d") / budget, rel=0.02)
    # a burn of ~1.5 over 6h and ~1 over 3d crosses the 3d/6h ticket threshold at 28d (0.93),
    # not the 1d/2h one (2.8) nor any page
    assert pay.burn_rates["6h"] == pytest.approx(expected_ratio("pay", "6h") / budget, rel=0.02)
    assert 0.94 < pay.burn_rates["3d"] < 2.8  # type: ignore[operator]
    assert pay.alerts == ["ticket"]
    [shop] = results[("shop", "shop")]
    assert shop.alerts == ["page"]


def test_a_stopped_prometheus_is_an_error_not_a_number(tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(SHOP)
    result = opsledger(
        "slo", "evaluate", str(manifest), "--prometheus", "http://127.0.0.1:9", "-o", "json"
    )
    assert result.returncode == 1
    assert "Prometheus at http://127.0.0.1:9 did not answer" in result.stderr
    assert result.stdout == ""


def test_the_generated_recording_rules_give_the_numbers_slo_evaluate_gives(
    prometheus_url: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(SHOP)
    result = opsledger("slo", "rules", str(manifest))
    assert result.returncode == 0, result.stderr
    groups = yaml.safe_load(result.stdout)["groups"]
    prometheus = Prometheus(prometheus_url)
    at = datetime.fromtimestamp(NOW, UTC)
    spec = ServiceLevelSpec.model_validate(yaml.safe_load(SHOP)["spec"])
    [shop] = evaluate_service_levels(prometheus, [ServiceLevelRef("shop", "shop", spec)], at)[
        ("shop", "shop")
    ]
    recorded = {}
    for rule in (r for g in groups for r in g["rules"]):
        if rule.get("record", "").startswith("opsledger_slo:error_ratio:rate"):
            [series] = prometheus.instant(rule["expr"], at)
            window = rule["record"].removeprefix("opsledger_slo:error_ratio:rate")
            recorded[window] = float(series["value"][1])
    assert set(recorded) == {*BURN_WINDOWS, "30d"}
    for window in BURN_WINDOWS:
        assert recorded[window] / 0.001 == pytest.approx(shop.burn_rates[window], rel=1e-9)
    assert 1 - recorded["30d"] / 0.001 == pytest.approx(shop.error_budget_remaining, rel=1e-9)


def test_a_query_prometheus_refuses_is_named_and_fails_the_check(
    prometheus_url: str, tmp_path: Path
) -> None:
    broken = SHOP.replace("checkout", "search").replace("name: shop", "name: search")
    # One expression (the parser accepts it) that Prometheus refuses when it runs it.
    broken = re.sub(
        r"errorQuery: (.*)",
        lambda m: f'errorQuery: \'label_replace({m.group(1)}, "a", "b", "", "(")\'',
        broken,
    ).replace("- name: availability", "- name: errors")
    manifest = tmp_path / "two.yaml"
    manifest.write_text(SHOP + "---" + broken)
    result = opsledger(
        "slo",
        "evaluate",
        str(manifest),
        "--prometheus",
        prometheus_url,
        "--at",
        datetime.fromtimestamp(NOW, UTC).isoformat().replace("+00:00", "Z"),
        "-o",
        "json",
    )
    assert result.returncode == 1
    assert "opsledger: objective errors: Prometheus refused the query: " in result.stderr
    assert "invalid regular expression" in result.stderr
    shop, errors = json.loads(result.stdout)["objectives"]
    assert shop["name"] == "availability"
    assert shop["alerts"] == ["page"]  # measured as before: the other query fails alone
    assert "error" not in shop
    assert errors["name"] == "errors"
    assert errors["sli"] is None
    assert "invalid regular expression" in errors["error"]


def _objective(namespace: str, error_query: str, total_query: str) -> ServiceLevelRef:
    spec = {
        "service": namespace,
        "objectives": [
            {
                "name": "availability",
                "objective": 99.0,
                "window": "28d",
                "sli": {"events": {"errorQuery": error_query, "totalQuery": total_query}},
            }
        ],
    }
    return ServiceLevelRef(namespace, namespace, ServiceLevelSpec.model_validate(spec))


def test_a_tenants_query_cannot_forge_or_hide_another_tenants_budget(prometheus_url: str) -> None:
    """Team pay's objective is batched with a hostile team's, in one query to a real
    Prometheus. A text that leaves its place in the batch is refused before it is batched; a
    valid expression labelled with pay's key is relabelled with its own; a trailing comment
    swallows nothing. pay's figures are the same as when it is measured alone."""
    prometheus = Prometheus(prometheus_url)
    at = datetime.fromtimestamp(NOW, UTC)
    pay = ServiceLevelRef("pay", "pay", _spec("pay", 99.0, "28d"))
    [alone] = evaluate_service_levels(prometheus, [pay], at)[("pay", "pay")]
    win = "{{.window}}"

    # Closing the expression to add pay's key with an exhausted budget: refused, with the
    # parser's reason.
    escape = f'rate(x[{win}])) or label_replace(vector(100), "slo", "pay/pay/availability", "", "")'
    with pytest.raises(ValueError, match="is not one PromQL expression: unexpected right paren"):
        _objective("mallory", escape + " or sum(rate(x[" + win + "])", f"rate(x[{win}])")

    # Valid expressions trying the same from inside, and hiding the rest behind a comment.
    forged = 'label_replace(vector(100), "slo", "pay/pay/availability", "slo_window", "")'
    hostile = [
        _objective("mallory", forged, "vector(1)"),
        _objective("eve", f"rate(http_requests_total[{win}]) # ) or vector(0)", "vector(1)"),
    ]
    results = evaluate_service_levels(prometheus, [*hostile, pay], at)
    assert prometheus.queries == 2  # pay alone, then the three in one batch
    [batched] = results[("pay", "pay")]
    assert batched.error is None
    assert batched.error_budget_remaining == pytest.approx(alone.error_budget_remaining, rel=1e-9)
    assert batched.burn_rates == pytest.approx(alone.burn_rates, rel=1e-9)
    assert batched.alerts == ["ticket"]
    [mallory] = results[("mallory", "mallory")]
    assert mallory.error_budget_remaining == pytest.approx(1 - 100 / 0.01)  # its own, not pay's
    [eve] = results[("eve", "eve")]
    assert eve.error is None  # the comment ended at its own line
    assert eve.sli is not None


def test_planned_work_leaves_the_error_budget_as_it_was_before_it(prometheus_url: str) -> None:
    """A completed change that declared the objective's impact: its hour of 33 % errors is left
    out, so the budget after it is the budget before it (within rounding), in the operator's
    figures and in the generated recording rules, over the real Prometheus's history. Without
    the exclusion the same hour spends most of the budget."""
    prometheus = Prometheus(prometheus_url)
    spec = _spec("failover", 99.9, "30d")
    start, end = (datetime.fromtimestamp(t, UTC) for t in FAILOVER)
    failover = Exclusion("failover", ("availability",), start, end, COMPLETED)

    def budget(at: int, *exclusions: Exclusion) -> Evaluation:
        ref = ServiceLevelRef("ops", "failover", spec, exclusions)
        [e] = evaluate_service_levels(prometheus, [ref], datetime.fromtimestamp(at, UTC))[
            ("ops", "failover")
        ]
        return e

    before = budget(FAILOVER[0])
    after = budget(NOW, failover)
    burnt = budget(NOW)
    assert before.error_budget_remaining == pytest.approx(0.5, abs=0.01)  # 0.05 % of 0.1 %
    assert after.error_budget_remaining == pytest.approx(before.error_budget_remaining, abs=0.005)
    assert burnt.error_budget_remaining is not None
    assert burnt.error_budget_remaining < before.error_budget_remaining - 0.4  # the hour, counted
    # A burn window the work reaches is measured without it; one after it is untouched.
    assert after.burn_rates["6h"] == pytest.approx(0.5, rel=0.05)
    assert (burnt.burn_rates["6h"] or 0) > 10
    assert after.burn_rates["1h"] == pytest.approx(burnt.burn_rates["1h"], rel=1e-9)

    # The generated rules compute the same: Prometheus evaluates them with time() per slice.
    objective = spec.objectives[0]
    rules = rule_groups(
        "ops",
        "failover",
        "failover",
        [
            RuleObjective(
                objective.name,
                objective.objective,
                objective.window,
                objective.sli.events.error_query,
                objective.sli.events.total_query,
                tuple(intervals([failover], "availability")),
            )
        ],
    )
    [month] = [r for g in rules for r in g["rules"] if r.get("record", "").endswith("rate30d")]
    [series] = prometheus.instant(month["expr"], datetime.fromtimestamp(NOW, UTC))
    assert 1 - float(series["value"][1]) / 0.001 == pytest.approx(
        after.error_budget_remaining, rel=1e-6
    )
