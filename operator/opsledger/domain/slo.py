"""SLO math: SLI, error budget, burn rates and multi-window multi-burn-rate alerts.

Everything here is a function of error ratios already measured; querying is the adapter's job.
The alert thresholds are the SRE workbook's, expressed as the share of the budget a window may
consume, so they scale with the objective's window:

| alert  | long window | short window | budget consumed in the long window | threshold at 30d |
| ------ | ----------- | ------------ | ---------------------------------- | ---------------- |
| page   | 1h          | 5m           | 2 %                                | 14.4             |
| page   | 6h          | 30m          | 5 %                                | 6                |
| ticket | 1d          | 2h           | 10 %                               | 3                |
| ticket | 3d          | 6h           | 10 %                               | 1                |

threshold = consumed × objective window / long window.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from opsledger.domain.budget_exclusions import (
    STEP,
    Interval,
    masked_ratio_expression,
    touches,
)
from opsledger.domain.promql import embedded, union
from opsledger.models.common import WINDOW_PLACEHOLDER

BURN_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


@dataclass(frozen=True)
class AlertRule:
    severity: str  # page | ticket
    long: str
    short: str
    consumed: float  # share of the budget the long window may burn


ALERT_RULES = (
    AlertRule("page", "1h", "5m", 0.02),
    AlertRule("page", "6h", "30m", 0.05),
    AlertRule("ticket", "1d", "2h", 0.10),
    AlertRule("ticket", "3d", "6h", 0.10),
)


def seconds(duration: str) -> float:
    """A Prometheus duration ("30d", "1h30m") in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"{duration!r} is not a Prometheus duration such as 5m, 1h or 30d")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def threshold(rule: AlertRule, objective_window: str) -> float:
    """The burn rate above which `rule` fires, for an objective measured over `objective_window`."""
    return rule.consumed * seconds(objective_window) / seconds(rule.long)


@dataclass(frozen=True)
class Evaluation:
    """One objective's state, as `opsledger slo evaluate` prints it and status holds it."""

    name: str
    sli: float | None  # percent of good events over the objective's window
    error_budget_remaining: float | None  # 1 untouched, 0 spent, negative overspent
    burn_rates: dict[str, float | None]
    alerts: list[str]
    error: str | None = None  # why it could not be measured (Prometheus refused its query)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "sli": self.sli,
            "errorBudgetRemaining": self.error_budget_remaining,
            "burnRates": self.burn_rates,
            "alerts": self.alerts,
            **({"error": self.error} if self.error else {}),
        }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def evaluate(
    name: str, objective: float, window: str, error_ratios: Mapping[str, float | None]
) -> Evaluation:
    """The evaluation of one objective from its error ratios per window (None: no data).

    `error_ratios` holds the objective's own window and every one of BURN_WINDOWS.
    """
    budget = 1 - objective / 100
    if budget <= 0:
        raise ValueError(f"objective {objective} leaves no error budget: use a value below 100")
    burn = {
        w: _finite(r / budget) if (r := _finite(error_ratios.get(w))) is not None else None
        for w in BURN_WINDOWS
    }
    over_window = _finite(error_ratios.get(window))
    sli = None if over_window is None else 100 * (1 - over_window)
    remaining = None if over_window is None else 1 - over_window / budget
    alerts: list[str] = []
    for rule in ALERT_RULES:
        limit = threshold(rule, window)
        long_rate, short_rate = burn.get(rule.long), burn.get(rule.short)
        if (
            long_rate is not None
            and short_rate is not None
            and long_rate > limit
            and short_rate > limit
            and rule.severity not in alerts
        ):
            alerts.append(rule.severity)
    return Evaluation(name, sli, remaining, burn, alerts)


def render(query: str, window: str) -> str:
    """A Sloth-style query with {{.window}} (and {{ .window }}) replaced by `window`."""
    return WINDOW_PLACEHOLDER.sub(window, query)


def ratio_expression(error_query: str, total_query: str, window: str) -> str:
    """PromQL for the error ratio over `window`, as a single unlabelled series.

    No error series at all means no errors (`or vector(0)`); no total means no data.
    """
    errors = f"(sum({embedded(render(error_query, window))}) or vector(0))"
    return f"({errors} / sum({embedded(render(total_query, window))}))"


def window_ratio(
    error_query: str, total_query: str, window: str, spans: Sequence[Interval] = ()
) -> str:
    """The error ratio over `window`, leaving out `spans` (planned work) when there are any."""
    if not spans:
        return ratio_expression(error_query, total_query, window)
    return masked_ratio_expression(
        render(error_query, STEP), render(total_query, STEP), window, spans
    )


def batched_query(
    objectives: Mapping[str, tuple[str, str, str]],
    exclusions: Mapping[str, Sequence[Interval]] | None = None,
    at: float | None = None,
) -> str:
    """One PromQL query for every objective and window: each series is tagged with labels
    `slo` (the key of `objectives`) and `slo_window`, so one round-trip answers all of them.

    `objectives` maps a key to (error query, total query, objective window); `exclusions` a
    key to the intervals left out of its budget (domain.budget_exclusions): a window they
    reach into at `at` (Unix seconds; default now) is measured without them.
    """
    moment = time.time() if at is None else at
    parts = []
    for key, (error_query, total_query, window) in objectives.items():
        spans = (exclusions or {}).get(key, ())
        for w in dict.fromkeys((window, *BURN_WINDOWS)):
            inside = [s for s in spans if touches([s], moment, seconds(w))]
            expr = window_ratio(error_query, total_query, w, inside)
            tagged = f'label_replace({expr}, "slo", "{escape_label_value(key)}", "", "")'
            parts.append(f'label_replace({tagged}, "slo_window", "{w}", "", "")')
    return union(parts)


def escape_label_value(value: str) -> str:
    """`value` inside a PromQL string literal."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def split_result(series: list[dict[str, object]]) -> dict[str, dict[str, float | None]]:
    """The batched query's answer as {objective key: {window: error ratio}}."""
    result: dict[str, dict[str, float | None]] = {}
    for item in series:
        metric = item.get("metric")
        value = item.get("value")
        if not isinstance(metric, dict) or not isinstance(value, list | tuple):
            continue
        key, window = metric.get("slo"), metric.get("slo_window")
        if isinstance(key, str) and isinstance(window, str):
            number = float(value[1])
            result.setdefault(key, {})[window] = number if math.isfinite(number) else None
    return result


def exhausted(evaluations: list[Evaluation], min_remaining: float) -> list[str]:
    """Objectives whose remaining budget is below `min_remaining` (what gates normal changes)."""
    return [
        e.name
        for e in evaluations
        if e.error_budget_remaining is not None and e.error_budget_remaining < min_remaining
    ]


@dataclass(frozen=True)
class BurnIncident:
    """The Incident a burn-rate alert opens: a page is urgent, a ticket can wait for hours."""

    severity: str  # page | ticket
    impact: str
    urgency: str
    title: str
    description: str


BURN_LEVELS = {"page": ("high", "high"), "ticket": ("medium", "medium")}


def burn_incident(
    service: str, objective: float, window: str, e: Evaluation
) -> BurnIncident | None:
    """What `e`'s alerts call for (the page when both fire), or None when nothing burns."""
    severity = next((s for s in ("page", "ticket") if s in e.alerts), None)
    if severity is None:
        return None
    impact, urgency = BURN_LEVELS[severity]
    rates = ", ".join(f"{w} {r:.1f}×" for w, r in e.burn_rates.items() if r is not None)
    fired = [
        f"{rule.long}/{rule.short} above {threshold(rule, window):.1f}×"
        for rule in ALERT_RULES
        if rule.severity == severity
        and (e.burn_rates.get(rule.long) or 0) > threshold(rule, window)
        and (e.burn_rates.get(rule.short) or 0) > threshold(rule, window)
    ]
    remaining = (
        f"{e.error_budget_remaining:.0%}" if e.error_budget_remaining is not None else "unknown"
    )
    return BurnIncident(
        severity=severity,
        impact=impact,
        urgency=urgency,
        title=f"{service}: error budget of {e.name} burning fast ({severity})"[:200],
        description=(
            f"Objective {e.name} ({objective:g} % over {window}) burns its error budget: "
            f"{'; '.join(fired)}. Burn rates: {rates}. Budget left: {remaining}."
        ),
    )


def severity_of(impact: str | None, urgency: str | None) -> str:
    """Which alert an open burn incident stands for, from its (possibly edited) levels."""
    return "page" if (impact, urgency) == BURN_LEVELS["page"] else "ticket"


def escalates(open_severity: str | None, new: BurnIncident) -> bool:
    """A ticket already open is raised to a page; a page is never lowered."""
    return open_severity == "ticket" and new.severity == "page"


def burn_incident_name(level: str, objective: str, earlier: Iterable[str]) -> str:
    """The Incident for the next burn of `objective`: `<level>-<objective>-burn-<n>`, one more
    than the highest number among the `earlier` ones' names. The same for every replica (and
    after a restart), so a second one asking to create it is refused as a duplicate."""
    prefix = f"{level}-{objective}-burn-"
    numbers = [
        int(n[len(prefix) :])
        for n in earlier
        if n.startswith(prefix) and n[len(prefix) :].isdigit()
    ]
    return f"{prefix}{max(numbers, default=0) + 1}"[:253]
