"""The monthly service review: what a month of service management looked like, as Markdown.

The report is written from facts gathered elsewhere (objectives, the month's KPIs, capacity risks,
problems) and names its charts, which an adapter draws. It is deterministic and carries no
timestamp of its own (the commit has one): for a month that is over, writing it again commits
nothing new.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opsledger.domain.kpi import CHANGE_TYPES, OUTCOMES, PRIORITIES, Kpis, incident_fact
from opsledger.domain.times import rfc3339

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a calendar month written YYYY-MM, in UTC."""
    match = _MONTH.match(month)
    if not match:
        raise ValueError(f"{month!r} is not a month such as 2026-11")
    year, number = int(match[1]), int(match[2])
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def previous_month(now: datetime) -> str:
    last = now.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


@dataclass(frozen=True)
class ObjectiveFigure:
    namespace: str
    service: str
    objective: str
    target: float  # percent
    sli: float | None  # percent
    budget_remaining: float | None  # 1 untouched, 0 spent

    @property
    def met(self) -> bool | None:
        return None if self.sli is None else self.sli >= self.target


@dataclass(frozen=True)
class ExclusionFigure:
    """Planned work left out of an objective's budget (domain.budget_exclusions)."""

    namespace: str
    service: str
    change: str
    objectives: Sequence[str]
    start: datetime
    end: datetime | None  # None: still in progress (provisional)


@dataclass(frozen=True)
class CapacityFigure:
    namespace: str
    item: str
    message: str


@dataclass(frozen=True)
class ProblemFigure:
    namespace: str
    name: str
    incidents: int
    known_error: str | None = None


@dataclass(frozen=True)
class ReviewFacts:
    cluster: str
    month: str
    kpis: Kpis
    objectives: Sequence[ObjectiveFigure] = ()
    exclusions: Sequence[ExclusionFigure] = ()
    capacity: Sequence[CapacityFigure] = ()
    problems: Sequence[ProblemFigure] = ()
    notes: Sequence[str] = field(default_factory=tuple)


CAPACITY_RISK = "CapacityRisk"


def capacity_figures(items: Iterable[Mapping[str, Any]]) -> list[CapacityFigure]:
    """The items whose CapacityRisk condition is True, with its message."""
    found = []
    for obj in items:
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if condition.get("type") == CAPACITY_RISK and condition.get("status") == "True":
                meta = obj.get("metadata") or {}
                found.append(
                    CapacityFigure(
                        str(meta.get("namespace")),
                        str(meta.get("name")),
                        str(condition.get("message") or ""),
                    )
                )
    return sorted(found, key=lambda c: (c.namespace, c.item))


def problem_figures(
    incidents: Iterable[Mapping[str, Any]], start: datetime, end: datetime
) -> list[ProblemFigure]:
    """Problems with an incident opened in the month; counts are over all their incidents."""
    members: Counter[tuple[str, str]] = Counter()
    active: set[tuple[str, str]] = set()
    causes: dict[tuple[str, str], str] = {}
    for obj in incidents:
        status = obj.get("status") or {}
        if not status.get("problem"):
            continue
        key = (str(obj["metadata"].get("namespace")), str(status["problem"]))
        members[key] += 1
        fact = incident_fact(obj)
        if fact is not None and start <= fact.opened_at < end:
            active.add(key)
        cause = (obj.get("spec") or {}).get("rootCause")
        if cause:
            causes[key] = str(cause)
    return [
        ProblemFigure(ns, name, members[(ns, name)], causes.get((ns, name)))
        for ns, name in sorted(active)
    ]


@dataclass(frozen=True)
class Chart:
    """A bar chart to draw: one bar group per label, one series per key."""

    file: str
    title: str
    labels: tuple[str, ...]
    series: Mapping[str, tuple[float, ...]]
    ylabel: str


def report_path(cluster: str, month: str) -> str:
    return f"reports/{cluster}/{month}.md"


def chart_path(cluster: str, month: str, chart: Chart) -> str:
    return f"reports/{cluster}/{month}/{chart.file}"


def charts(facts: ReviewFacts) -> list[Chart]:
    """The charts beside the tables."""
    k = facts.kpis
    found = [
        Chart(
            "incidents.svg",
            f"Incidents opened in {facts.month}, by priority",
            PRIORITIES,
            {"incidents": tuple(float(k.incidents_by_priority.get(p, 0)) for p in PRIORITIES)},
            "incidents",
        ),
        Chart(
            "changes.svg",
            f"Changes finished in {facts.month}, by type and outcome",
            CHANGE_TYPES,
            {
                outcome: tuple(float(k.change_outcomes.get((t, outcome), 0)) for t in CHANGE_TYPES)
                for outcome in OUTCOMES
            },
            "changes",
        ),
    ]
    measured = [o for o in facts.objectives if o.budget_remaining is not None]
    if measured:
        found.append(
            Chart(
                "error-budgets.svg",
                "Error budget left per objective (1 = untouched)",
                tuple(f"{o.service}/{o.objective}" for o in measured),
                {"budget left": tuple(float(o.budget_remaining or 0.0) for o in measured)},
                "share of the budget",
            )
        )
    return found


def _duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "–"
    if seconds < 60:
        return f"{round(seconds)}s"
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def _percent(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _exclusion_lines(exclusions: Sequence[ExclusionFigure]) -> list[str]:
    """The month's planned work left out of the budget, as a table (nothing when none)."""
    if not exclusions:
        return []
    lines = [
        "",
        "Planned work left out of the error budget (Changes that declared plannedImpact and "
        "completed; in progress: provisional):",
        "",
        "| namespace | service | change | objectives | from | to |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for x in exclusions:
        until = "in progress" if x.end is None else rfc3339(x.end)
        lines.append(
            f"| {x.namespace} | {x.service} | {x.change} | {', '.join(x.objectives)} | "
            f"{rfc3339(x.start)} | {until} |"
        )
    return lines


def render(facts: ReviewFacts) -> str:
    """The report as Markdown, with its charts linked beside the tables."""
    k = facts.kpis
    images = {c.file: f"{facts.month}/{c.file}" for c in charts(facts)}
    lines = [
        f"# Service review {facts.month} — {facts.cluster}",
        "",
        "Written by OpsLedger from the cluster's ServiceLevels, Incidents, Changes and "
        "ConfigurationItems; the SLOs are measured at the end of the month.",
        "",
        "## Service levels",
        "",
    ]
    if facts.objectives:
        lines += [
            "| namespace | service | objective | target % | SLI % | budget left | met |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for o in facts.objectives:
            met = {True: "yes", False: "**no**", None: "unknown"}[o.met]
            budget = "–" if o.budget_remaining is None else f"{o.budget_remaining:.2f}"
            lines.append(
                f"| {o.namespace} | {o.service} | {o.objective} | {o.target:g} | "
                f"{_percent(o.sli)} | {budget} | {met} |"
            )
        if "error-budgets.svg" in images:
            lines += ["", f"![Error budget left]({images['error-budgets.svg']})"]
    else:
        lines.append("No ServiceLevels.")
    lines += _exclusion_lines(facts.exclusions)
    lines += [
        "",
        "## Incidents",
        "",
        "| priority | opened | mean time to acknowledge | mean time to resolve | "
        "response breaches | resolution breaches |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in PRIORITIES:
        lines.append(
            f"| {p} | {k.incidents_by_priority.get(p, 0)} | "
            f"{_duration(k.mean_time_to_acknowledge.get(p))} | "
            f"{_duration(k.mean_time_to_resolve.get(p))} | "
            f"{k.sla_breaches.get((p, 'response'), 0)} | "
            f"{k.sla_breaches.get((p, 'resolution'), 0)} |"
        )
    lines += ["", f"![Incidents by priority]({images['incidents.svg']})", "", "## Changes", ""]
    lines += [
        "| type | " + " | ".join(OUTCOMES) + " |",
        "| --- |" + " --- |" * len(OUTCOMES),
    ]
    for t in CHANGE_TYPES:
        counts = " | ".join(str(k.change_outcomes.get((t, o), 0)) for o in OUTCOMES)
        lines.append(f"| {t} | {counts} |")
    failure = "–" if k.change_failure_rate is None else f"{k.change_failure_rate:.1%}"
    lines += [
        "",
        f"![Changes by type and outcome]({images['changes.svg']})",
        "",
        "### DORA",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| deployment frequency | {k.deployments_per_day:.2f} per day |",
        f"| lead time for changes (median) | {_duration(k.lead_time)} |",
        f"| change failure rate | {failure} |",
        f"| time to restore service (median) | {_duration(k.time_to_restore)} |",
        "",
        "## Capacity risks",
        "",
    ]
    if facts.capacity:
        lines += ["| namespace | item | risk |", "| --- | --- | --- |"]
        lines += [f"| {c.namespace} | {c.item} | {c.message} |" for c in facts.capacity]
    else:
        lines.append("None predicted.")
    lines += ["", "## Recurring problems", ""]
    if facts.problems:
        lines += ["| namespace | problem | incidents | known error |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {p.namespace} | {p.name} | {p.incidents} | {p.known_error or '–'} |"
            for p in facts.problems
        ]
    else:
        lines.append("None.")
    if facts.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in facts.notes]]
    return "\n".join(lines) + "\n"
