"""SLO math against the SRE workbook's numbers."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsledger.domain.slo import (
    ALERT_RULES,
    BURN_WINDOWS,
    batched_query,
    burn_incident,
    burn_incident_name,
    escalates,
    evaluate,
    exhausted,
    render,
    seconds,
    split_result,
    threshold,
)


def test_thresholds_at_30_days_are_the_workbooks() -> None:
    assert [round(threshold(r, "30d"), 6) for r in ALERT_RULES] == [14.4, 6.0, 3.0, 1.0]


def test_thresholds_scale_with_the_window() -> None:
    assert [round(threshold(r, "28d"), 4) for r in ALERT_RULES] == [13.44, 5.6, 2.8, 0.9333]


def _ratios(default: float, **overrides: float) -> dict[str, float | None]:
    ratios: dict[str, float | None] = dict.fromkeys((*BURN_WINDOWS, "30d"), default)
    ratios.update({k.removeprefix("w"): v for k, v in overrides.items()})
    return ratios


def test_a_quiet_service_keeps_its_budget_and_raises_nothing() -> None:
    result = evaluate("availability", 99.9, "30d", _ratios(0.0002))
    assert result.sli == pytest.approx(99.98)
    assert result.error_budget_remaining == pytest.approx(0.8)
    assert result.burn_rates["1h"] == pytest.approx(0.2)
    assert result.alerts == []


def test_a_fast_burn_pages_only_when_both_windows_agree() -> None:
    both = evaluate("a", 99.9, "30d", _ratios(0.0002, w1h=0.02, w5m=0.02))
    assert both.burn_rates["1h"] == pytest.approx(20)
    assert both.alerts == ["page"]
    recovered = evaluate("a", 99.9, "30d", _ratios(0.0002, w1h=0.02, w5m=0.0))
    assert recovered.alerts == []


def test_a_slow_burn_raises_a_ticket() -> None:
    result = evaluate("a", 99.9, "30d", _ratios(0.0002, w1d=0.004, w2h=0.004))
    assert result.alerts == ["ticket"]


def test_each_alert_kind_appears_once_and_page_comes_first() -> None:
    result = evaluate("a", 99.0, "30d", _ratios(0.5))
    assert result.alerts == ["page", "ticket"]
    assert result.error_budget_remaining == pytest.approx(-49)


def test_no_data_is_none_never_a_number() -> None:
    result = evaluate("a", 99.9, "30d", {})
    assert result.sli is None
    assert result.error_budget_remaining is None
    assert all(v is None for v in result.burn_rates.values())
    assert result.alerts == []


def test_an_objective_of_100_percent_is_refused() -> None:
    with pytest.raises(ValueError, match="no error budget"):
        evaluate("a", 100, "30d", {})


@given(st.floats(min_value=90, max_value=99.999), st.floats(min_value=0, max_value=1))
def test_budget_and_sli_agree(objective: float, error_ratio: float) -> None:
    result = evaluate("x", objective, "30d", _ratios(error_ratio))
    assert result.sli is not None
    assert result.error_budget_remaining is not None
    spent = 1 - result.error_budget_remaining
    assert math.isclose((100 - result.sli) / (100 - objective), spent, rel_tol=1e-6, abs_tol=1e-9)


def test_window_placeholders_are_replaced_like_sloth() -> None:
    assert render("rate(x[{{.window}}]) / rate(y[{{ .window }}])", "5m") == (
        "rate(x[5m]) / rate(y[5m])"
    )


def test_one_query_covers_every_objective_and_window() -> None:
    query = batched_query(
        {
            "shop/shop/availability": ("err[{{.window}}]", "all[{{.window}}]", "30d"),
            "pay/pay/latency": ("slow[{{.window}}]", "all[{{.window}}]", "28d"),
        }
    )
    assert query.count(" or ") - query.count(" or vector(0)") == 2 * 8 - 1  # 16 ratios joined
    assert query.count("label_replace(label_replace(") == 2 * 8
    assert '"slo_window", "28d"' in query
    assert "err[3d]" in query
    assert "slow[30m]" in query


def test_the_answer_is_split_back_per_objective_and_window() -> None:
    series = [
        {"metric": {"slo": "a", "slo_window": "5m"}, "value": [1, "0.01"]},
        {"metric": {"slo": "a", "slo_window": "1h"}, "value": [1, "NaN"]},
        {"metric": {"slo": "b", "slo_window": "30d"}, "value": [1, "0"]},
    ]
    assert split_result(series) == {"a": {"5m": 0.01, "1h": None}, "b": {"30d": 0.0}}


def test_durations() -> None:
    assert seconds("30d") == 30 * 86400
    assert seconds("1h30m") == 5400
    with pytest.raises(ValueError, match="Prometheus duration"):
        seconds("1 hour")


def test_exhausted_names_the_objectives_below_the_policy() -> None:
    evals = [
        evaluate("availability", 99.9, "30d", _ratios(0.0009)),  # 10 % left
        evaluate("latency", 99.0, "30d", _ratios(0.001)),  # 90 % left
        evaluate("unknown", 99.0, "30d", {}),
    ]
    assert exhausted(evals, 0.0) == []
    assert exhausted(evals, 0.2) == ["availability"]


def test_a_page_calls_for_a_p1_incident_naming_the_windows_that_fired() -> None:
    e = evaluate("availability", 99.9, "30d", {"30d": 0.0005, **dict.fromkeys(BURN_WINDOWS, 0.02)})
    assert e.alerts == ["page", "ticket"]
    burn = burn_incident("checkout", 99.9, "30d", e)
    assert burn is not None
    assert (burn.severity, burn.impact, burn.urgency) == ("page", "high", "high")
    assert "1h/5m above 14.4×" in burn.description
    assert "6h/30m above 6.0×" in burn.description
    assert "Budget left: 50%" in burn.description


def test_a_ticket_alone_calls_for_a_lower_priority_incident_and_is_raised_by_a_page() -> None:
    slow = {"30d": 0.0005, **dict.fromkeys(BURN_WINDOWS, 0.002)}  # 2× everywhere: tickets only
    e = evaluate("availability", 99.9, "30d", slow)
    burn = burn_incident("checkout", 99.9, "30d", e)
    assert burn is not None
    assert (burn.severity, burn.impact, burn.urgency) == ("ticket", "medium", "medium")
    page = burn_incident(
        "checkout",
        99.9,
        "30d",
        evaluate("availability", 99.9, "30d", dict.fromkeys(BURN_WINDOWS, 0.02)),
    )
    assert page is not None
    assert escalates("ticket", page)
    assert not escalates("page", burn)
    assert not escalates("page", page)


def test_nothing_burning_calls_for_no_incident() -> None:
    calm = evaluate(
        "availability", 99.9, "30d", {"30d": 0.0001, **dict.fromkeys(BURN_WINDOWS, 0.0001)}
    )
    assert burn_incident("checkout", 99.9, "30d", calm) is None


def test_burn_incident_names_are_the_same_for_every_replica() -> None:
    # Two replicas (or one restarted) asking for the next burn's Incident name the same one, so
    # the API server refuses the second create: no duplicate Incidents.
    earlier = ["shop-availability-burn-1", "shop-availability-burn-3", "shop-latency-burn-7"]
    assert burn_incident_name("shop", "availability", earlier) == "shop-availability-burn-4"
    assert burn_incident_name("shop", "latency", []) == "shop-latency-burn-1"
    # Names from before (a timestamp) still order: the next one is after them.
    old = ["shop-availability-burn-20261201120000"]
    assert (
        burn_incident_name("shop", "availability", old) == "shop-availability-burn-20261201120001"
    )
