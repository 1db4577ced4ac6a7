"""A ServiceLevel's objectives as Prometheus rules, for Prometheus to evaluate on its own.

The operator evaluates objectives itself (domain.slo) and opens Incidents. These rules are the
same numbers computed inside Prometheus, as Sloth and Pyrra generate them: burn-rate alerts
then page even while the operator is down, and dashboards read the recorded ratios.

Per objective, recording rules `opsledger_slo:error_ratio:rate<window>` for every burn window
and the objective's own window (the exact ratio domain.slo evaluates),
`opsledger_slo:objective:ratio` and `opsledger_slo:error_budget_remaining:ratio`; and two
alerts, page and ticket, over the SRE workbook's window pairs with domain.slo's thresholds.
The ratio over the objective's window reads weeks of samples, so it and the budget sit in a
group of their own, evaluated less often.
Every series is labelled namespace, servicelevel, service and objective, as the operator's own
`opsledger_slo_*` gauges are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsledger.domain.budget_exclusions import Interval
from opsledger.domain.slo import (
    ALERT_RULES,
    BURN_WINDOWS,
    escape_label_value,
    threshold,
    window_ratio,
)

PREFIX = "opsledger_slo"
ALERT_NAMES = {"page": "SLOErrorBudgetBurnPage", "ticket": "SLOErrorBudgetBurnTicket"}
# Alertmanager severities, as the chart's own alerting rules use them.
SEVERITIES = {"page": "critical", "ticket": "warning"}
# How often the budget over the objective's window (weeks of samples) is evaluated.
BUDGET_INTERVAL = "5m"


@dataclass(frozen=True)
class RuleObjective:
    """One objective, as the rules need it."""

    name: str
    objective: float  # percent
    window: str
    error_query: str
    total_query: str
    # Planned work left out of the budget (domain.budget_exclusions): every window is measured
    # without it, in Prometheus as in the operator.
    exclusions: tuple[Interval, ...] = ()


def ratio_record(window: str) -> str:
    """The name of the recorded error ratio over `window`."""
    return f"{PREFIX}:error_ratio:rate{window}"


def rule_groups(
    namespace: str, name: str, service: str, objectives: Sequence[RuleObjective]
) -> list[dict[str, Any]]:
    """The ServiceLevel `namespace/name` as two Prometheus rule groups: the burn-rate ratios
    and alerts, evaluated at Prometheus's pace, and the budget over the objectives' windows
    (raw range queries over weeks), every BUDGET_INTERVAL."""
    burn: list[dict[str, Any]] = []
    budget_rules: list[dict[str, Any]] = []
    for o in objectives:
        labels = {
            "namespace": namespace,
            "servicelevel": name,
            "service": service,
            "objective": o.name,
        }
        selector = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())
        budget = 1 - o.objective / 100
        for window in BURN_WINDOWS:
            burn.append(_ratio(o, window, labels))
        for severity in ("page", "ticket"):
            burn.append(_alert(severity, o, labels, selector))
        if o.window not in BURN_WINDOWS:
            budget_rules.append(_ratio(o, o.window, labels))
        budget_rules += [
            {
                "record": f"{PREFIX}:objective:ratio",
                "expr": f"vector({o.objective / 100:.10g})",
                "labels": dict(labels),
            },
            {
                "record": f"{PREFIX}:error_budget_remaining:ratio",
                "expr": f"1 - {ratio_record(o.window)}{{{selector}}} / {budget:.10g}",
                "labels": dict(labels),
            },
        ]
    group = f"opsledger-slo-{namespace}-{name}"
    return [
        {"name": group, "rules": burn},
        {"name": f"{group}-budget", "interval": BUDGET_INTERVAL, "rules": budget_rules},
    ]


def _ratio(o: RuleObjective, window: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "record": ratio_record(window),
        "expr": window_ratio(o.error_query, o.total_query, window, o.exclusions),
        "labels": dict(labels),
    }


def _alert(
    severity: str, o: RuleObjective, labels: dict[str, str], selector: str
) -> dict[str, Any]:
    budget = 1 - o.objective / 100
    pairs = [r for r in ALERT_RULES if r.severity == severity]
    conditions = []
    for rule in pairs:
        limit = f"{threshold(rule, o.window) * budget:.10g}"
        conditions.append(
            f"({ratio_record(rule.long)}{{{selector}}} > {limit}"
            f" and {ratio_record(rule.short)}{{{selector}}} > {limit})"
        )
    windows = " or ".join(f"{r.long}/{r.short} above {threshold(r, o.window):.3g}×" for r in pairs)
    return {
        "alert": ALERT_NAMES[severity],
        "expr": " or ".join(conditions),
        "labels": {
            **labels,
            "severity": SEVERITIES[severity],
            "slo_severity": severity,
            # OpsLedger's receiver skips it: the operator opens the burn Incident itself.
            "opsledger_incident": "managed",
        },
        "annotations": {
            "summary": f"{labels['service']}: the error budget of {o.name} burns fast "
            f"({severity}).",
            "description": f"Objective {o.name} ({o.objective:g} % over {o.window}): the burn "
            f"rate is {windows}. kubectl describe servicelevel {labels['servicelevel']} -n "
            f"{labels['namespace']} shows the budget left.",
        },
    }


def rule_name(service_level: str) -> str:
    """The PrometheusRule of the ServiceLevel `service_level`."""
    return f"{service_level}-slo"


def prometheus_rule(
    namespace: str, name: str, groups: Sequence[dict[str, Any]], labels: dict[str, str]
) -> dict[str, Any]:
    """The groups as a Prometheus Operator PrometheusRule object."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": rule_name(name),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "opsledger", **labels},
        },
        "spec": {"groups": list(groups)},
    }
