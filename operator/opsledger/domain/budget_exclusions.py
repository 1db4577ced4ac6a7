"""Planned work left out of the error budget: which intervals, and the PromQL that skips them.

A Change may declare the objectives its planned work will disturb (spec.plannedImpact). While
it is in progress that time is provisionally left out of those objectives' budget; once it
completes, for good; if it fails or is rolled back, nothing is left out — its impact was not
what was planned, and the budget says so.

What counts is decided by the ServiceLevel evaluation loop, from what it has seen itself:
an exclusion begins only when the loop sees the change in progress (InProgress or Verifying,
which only the operator can write: the webhook refuses anyone else's status), and is kept in
the ServiceLevel's status, which only the operator writes. A Change whose status says
Completed without the loop ever having seen it run — a status forged while the webhooks were
down — leaves nothing out.

Measuring without an interval: the error ratio over a window W is the ratio of the SLI's
queries over W. With intervals to skip, the window is cut in STEP-long slices (a subquery
`[W:STEP]`), each slice measured by the SLI's queries over STEP, and the slices whose span
touches an excluded interval are dropped before errors and totals are summed. A slice ending
at t covers (t - STEP, t]: it touches [start, end] when start < t < end + STEP. The result is
the traffic-weighted error ratio of the rest of the window, within one slice of the exact
figure at each edge. Prometheus evaluates the same text in the generated rules: `time()`
inside a subquery is each slice's own time, so the expression needs no help from outside.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from opsledger.domain.promql import embedded
from opsledger.domain.times import parse_time, rfc3339

STEP = "5m"
STEP_SECONDS = 300
# At most this many exclusions per ServiceLevel (the newest kept): each adds a term to every
# budget query, and none stays longer than the longest objective window anyway.
MAX_EXCLUSIONS = 50

IN_PROGRESS = "InProgress"
COMPLETED = "Completed"
RUNNING_PHASES = ("InProgress", "Verifying")
# Phases after which a change left nothing out.
NOTHING_KEPT_PHASES = ("Failed", "RolledBack", "Cancelled", "Rejected")


@dataclass(frozen=True)
class Exclusion:
    """One change's planned work, left out of `objectives`' budget from `start` to `end`."""

    change: str
    objectives: tuple[str, ...]
    start: datetime
    end: datetime | None  # None: still in progress
    state: str  # IN_PROGRESS | COMPLETED

    def as_status(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "objectives": list(self.objectives),
            "start": rfc3339(self.start),
            **({"end": rfc3339(self.end)} if self.end is not None else {}),
            "state": self.state,
        }

    @classmethod
    def from_status(cls, item: Mapping[str, Any]) -> Exclusion | None:
        start, end = parse_time(item.get("start")), parse_time(item.get("end"))
        if start is None or not item.get("change"):
            return None
        return cls(
            str(item["change"]),
            tuple(str(o) for o in item.get("objectives") or ()),
            start,
            end,
            COMPLETED if end is not None and item.get("state") == COMPLETED else IN_PROGRESS,
        )


@dataclass(frozen=True)
class ObservedChange:
    """What the loop reads of a Change of the ServiceLevel's namespace and service."""

    name: str
    objectives: tuple[str, ...]  # spec.plannedImpact.objectives
    phase: str | None
    started_at: datetime | None  # status.execution.startedAt
    finished_at: datetime | None  # status.execution.finishedAt


def observe(change: Mapping[str, Any]) -> ObservedChange | None:
    """The Change as the loop needs it, or None when it declares no planned impact."""
    spec = change.get("spec") or {}
    impact = spec.get("plannedImpact") or {}
    objectives = tuple(str(o) for o in impact.get("objectives") or ())
    if not objectives:
        return None
    status = change.get("status") or {}
    execution = status.get("execution") or {}

    return ObservedChange(
        str((change.get("metadata") or {}).get("name")),
        objectives,
        status.get("phase"),
        parse_time(execution.get("startedAt")),
        parse_time(execution.get("finishedAt")),
    )


def merge(
    previous: Iterable[Exclusion],
    changes: Iterable[ObservedChange],
    objectives: Sequence[str],
    now: datetime,
    horizon: timedelta,
) -> list[Exclusion]:
    """The exclusions after one look at the changes.

    `previous` are those the ServiceLevel's status holds (the loop's own record); `changes`
    the Changes of its namespace and service that declare planned impact; `objectives` its
    objectives' names (others a change names are ignored); `horizon` its longest objective
    window: an exclusion that ended before it no longer counts and is dropped.

    - seen running: a provisional exclusion from its start;
    - completed, and held provisionally before: final, until it finished;
    - completed without ever having been seen running: nothing (see the module's docstring);
    - failed, rolled back, or deleted while provisional: nothing;
    - completed before and since deleted: kept (the record outlives the object).
    """
    known = set(objectives)
    kept = {e.change: e for e in previous}
    seen: set[str] = set()
    for c in changes:
        seen.add(c.name)
        names = tuple(o for o in c.objectives if o in known)
        earlier = kept.get(c.name)
        if not names or c.phase in NOTHING_KEPT_PHASES:
            kept.pop(c.name, None)
        elif c.phase in RUNNING_PHASES and c.started_at is not None:
            kept[c.name] = Exclusion(c.name, names, c.started_at, None, IN_PROGRESS)
        elif c.phase == COMPLETED and earlier is not None:
            end = c.finished_at or (earlier.end if earlier.end is not None else now)
            kept[c.name] = replace(
                earlier, objectives=names, end=max(end, earlier.start), state=COMPLETED
            )
        elif earlier is None or earlier.state != COMPLETED:
            kept.pop(c.name, None)
    for name in list(kept):
        e = kept[name]
        if name not in seen and e.state != COMPLETED:
            del kept[name]  # deleted before it completed
        elif e.end is not None and e.end < now - horizon:
            del kept[name]  # out of every window
    ordered = sorted(kept.values(), key=lambda e: (e.start, e.change))
    return ordered[-MAX_EXCLUSIONS:]


Interval = tuple[float, float | None]  # Unix seconds; end None: still in progress


def intervals(exclusions: Iterable[Exclusion], objective: str) -> list[Interval]:
    """The intervals left out of `objective`, overlapping ones joined, in order."""
    spans = sorted(
        (e.start.timestamp(), e.end.timestamp() if e.end is not None else None)
        for e in exclusions
        if objective in e.objectives
    )
    joined: list[Interval] = []
    for start, end in spans:
        if joined:
            last_start, last_end = joined[-1]
            if last_end is None or start <= last_end:
                merged_end = None if last_end is None or end is None else max(last_end, end)
                joined[-1] = (last_start, merged_end)
                continue
        joined.append((start, end))
    return joined


def touches(spans: Sequence[Interval], at: float, window_seconds: float) -> bool:
    """Whether any of `spans` reaches into the window of `window_seconds` ending at `at`."""
    return any(
        start < at and (end is None or end + STEP_SECONDS > at - window_seconds)
        for start, end in spans
    )


def _slice_touches(spans: Sequence[Interval]) -> str:
    """PromQL selecting the slices (subquery steps) that touch one of `spans`."""
    parts = []
    for start, end in spans:
        after = f"vector(time()) > {start:.3f}"
        parts.append(
            f"({after})"
            if end is None
            else f"(({after}) and on() (vector(time()) < {end + STEP_SECONDS:.3f}))"
        )
    return " or ".join(parts)


def masked_ratio_expression(
    error_query: str, total_query: str, window: str, spans: Sequence[Interval]
) -> str:
    """PromQL for the error ratio over `window` without the slices touching `spans`.

    `error_query` and `total_query` are already rendered for STEP (their {{.window}} is STEP).
    Errors with no series are no errors (`or vector(0)`); a window left with no totals is no
    data.
    """
    if not spans:
        raise ValueError("a masked ratio needs an interval to leave out")
    keep = f"(vector(1) unless on() ({_slice_touches(spans)}))"
    errors = f"((sum({embedded(error_query)}) or vector(0)) and on() {keep})"
    total = f"(sum({embedded(total_query)}) and on() {keep})"
    return f"(sum_over_time({errors}[{window}:{STEP}]) / sum_over_time({total}[{window}:{STEP}]))"


def exclusion_message(before: Exclusion | None, after: Exclusion | None) -> str | None:
    """What a ServiceLevel's Event says when one change's exclusion begins, ends or goes."""
    if before == after:
        return None
    if after is not None:
        budgets = ", ".join(after.objectives)
        if after.state == COMPLETED:
            return (
                f"change {after.change} completed: {rfc3339(after.start)} to "
                f"{rfc3339(after.end or after.start)} stays out of the error budget of {budgets}"
            )
        return (
            f"change {after.change} is in progress: from {rfc3339(after.start)} it is left out "
            f"of the error budget of {budgets}, provisionally (kept only if it completes)"
        )
    assert before is not None
    budgets = ", ".join(before.objectives)
    if before.state == COMPLETED:
        return (
            f"change {before.change}'s planned work has left every objective's window: no "
            f"longer left out of {budgets}"
        )
    return (
        f"change {before.change} did not complete: its time counts against the error budget "
        f"of {budgets} again"
    )
