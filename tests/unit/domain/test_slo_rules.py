"""The objectives as Prometheus rules: names, labels and the thresholds of the alert windows."""

from __future__ import annotations

from opsledger.domain.slo_rules import RuleObjective, rule_groups

PAY = RuleObjective(
    name="availability",
    objective=99.0,
    window="28d",
    error_query='sum(rate(errors_total{app="pay"}[{{.window}}]))',
    total_query='sum(rate(requests_total{app="pay"}[{{.window}}]))',
)


def test_every_window_is_recorded_once_with_the_objectives_labels() -> None:
    burn, budget = rule_groups("payments", "pay", "pay", [PAY])
    assert burn["name"] == "opsledger-slo-payments-pay"
    assert "interval" not in burn
    assert (budget["name"], budget["interval"]) == ("opsledger-slo-payments-pay-budget", "5m")
    records = [r["record"] for g in (burn, budget) for r in g["rules"] if "record" in r]
    ratios = [r.removeprefix("opsledger_slo:error_ratio:rate") for r in records if "rate" in r]
    assert ratios == ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "28d"]
    assert [r["record"] for r in budget["rules"]] == [
        "opsledger_slo:error_ratio:rate28d",
        "opsledger_slo:objective:ratio",
        "opsledger_slo:error_budget_remaining:ratio",
    ]
    ratio_28d = budget["rules"][0]
    assert "[28d]" in ratio_28d["expr"]
    assert "{{.window}}" not in ratio_28d["expr"]
    assert ratio_28d["labels"] == {
        "namespace": "payments",
        "servicelevel": "pay",
        "service": "pay",
        "objective": "availability",
    }


def test_alert_thresholds_scale_with_the_objective_window() -> None:
    burn, _ = rule_groups("payments", "pay", "pay", [PAY])
    rules = {r.get("alert"): r for r in burn["rules"]}
    # at 28d the 1h/5m page is 2 % of the budget in an hour: 13.44x a 1 % budget
    page = rules["SLOErrorBudgetBurnPage"]["expr"]
    assert "opsledger_slo:error_ratio:rate1h{" in page
    assert "> 0.1344 and" in page
    assert "rate6h{" in page
    assert "> 0.056 and" in page
    ticket = rules["SLOErrorBudgetBurnTicket"]["expr"]
    assert "> 0.028 and" in ticket  # 1d/2h: 10 % → 2.8x
    assert "rate3d{" in ticket
    assert "> 0.009333333333" in ticket
    assert rules["SLOErrorBudgetBurnTicket"]["labels"]["severity"] == "warning"
    assert rules["SLOErrorBudgetBurnPage"]["labels"]["opsledger_incident"] == "managed"
