"""Service-management KPIs and the four DORA metrics, from the Changes and Incidents themselves.

Everything is computed over a look-back window ending now, from facts read off the objects:

- **Incidents**: open ones by priority; mean time to acknowledge and to resolve, and SLA breaches,
  of the incidents opened in the window.
- **Changes**: outcomes (Completed, Failed, RolledBack, Rejected, Cancelled) of the changes that
  finished in the window, by type.
- **DORA** (the DevOps Research and Assessment metrics, as a platform team reads them here):
  - deployment frequency: changes completed per day;
  - lead time for changes: median time from a Change's creation to its completion;
  - change failure rate: failed or rolled-back changes over all changes that were carried out
    (Completed + Failed + RolledBack);
  - time to restore service: median time to resolve the incidents changes caused (opened by a
    rollback, or naming the change as suspectedCause).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opsledger.domain.times import parse_time

PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
CHANGE_TYPES = ("standard", "normal", "emergency")
OUTCOMES = ("Completed", "Failed", "RolledBack", "Rejected", "Cancelled")
CARRIED_OUT = ("Completed", "Failed", "RolledBack")
RESOLVED = ("Resolved", "Closed")


@dataclass(frozen=True)
class IncidentKpiFact:
    priority: str
    state: str
    opened_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    response_breached: bool = False
    resolution_breached: bool = False
    caused_by_change: bool = False


@dataclass(frozen=True)
class ChangeKpiFact:
    type: str
    phase: str
    created_at: datetime
    finished_at: datetime | None = None  # when it entered its final phase


@dataclass(frozen=True)
class Kpis:
    open_incidents: dict[str, int]
    mean_time_to_acknowledge: dict[str, float | None]  # seconds, by priority
    mean_time_to_resolve: dict[str, float | None]
    sla_breaches: dict[tuple[str, str], int]  # (priority, response|resolution) → count
    change_outcomes: dict[tuple[str, str], int]  # (type, outcome) → count
    deployments_per_day: float
    lead_time: float | None  # seconds, median
    change_failure_rate: float | None  # 0..1; None when nothing was carried out
    time_to_restore: float | None  # seconds, median
    incidents_by_priority: dict[str, int] = field(default_factory=dict)  # opened in the window


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def compute(
    incidents: Iterable[IncidentKpiFact],
    changes: Iterable[ChangeKpiFact],
    *,
    now: datetime,
    window: timedelta,
) -> Kpis:
    """The KPIs over the `window` before `now`."""
    since = now - window
    incidents = list(incidents)
    recent = [i for i in incidents if since <= i.opened_at <= now]
    open_ = Counter(i.priority for i in incidents if i.state not in RESOLVED)
    tta: dict[str, list[float]] = {p: [] for p in PRIORITIES}
    ttr: dict[str, list[float]] = {p: [] for p in PRIORITIES}
    breaches: Counter[tuple[str, str]] = Counter()
    for i in recent:
        if i.acknowledged_at and i.priority in tta:
            tta[i.priority].append((i.acknowledged_at - i.opened_at).total_seconds())
        if i.resolved_at and i.priority in ttr:
            ttr[i.priority].append((i.resolved_at - i.opened_at).total_seconds())
        if i.response_breached:
            breaches[(i.priority, "response")] += 1
        if i.resolution_breached:
            breaches[(i.priority, "resolution")] += 1
    finished = [
        c
        for c in changes
        if c.phase in OUTCOMES and c.finished_at is not None and since <= c.finished_at <= now
    ]
    outcomes = Counter((c.type, c.phase) for c in finished)
    completed = [c for c in finished if c.phase == "Completed"]
    carried_out = [c for c in finished if c.phase in CARRIED_OUT]
    failed = [c for c in carried_out if c.phase != "Completed"]
    restore = [
        (i.resolved_at - i.opened_at).total_seconds()
        for i in recent
        if i.caused_by_change and i.resolved_at
    ]
    return Kpis(
        open_incidents={p: open_.get(p, 0) for p in PRIORITIES},
        mean_time_to_acknowledge={p: _mean(v) for p, v in tta.items()},
        mean_time_to_resolve={p: _mean(v) for p, v in ttr.items()},
        sla_breaches={
            (p, t): breaches.get((p, t), 0) for p in PRIORITIES for t in ("response", "resolution")
        },
        change_outcomes={(t, o): outcomes.get((t, o), 0) for t in CHANGE_TYPES for o in OUTCOMES},
        deployments_per_day=len(completed) / (window.total_seconds() / 86400),
        lead_time=_median(
            [
                (c.finished_at - c.created_at).total_seconds()
                for c in completed
                if c.finished_at is not None
            ]
        ),
        change_failure_rate=len(failed) / len(carried_out) if carried_out else None,
        time_to_restore=_median(restore),
        incidents_by_priority=dict(Counter(i.priority for i in recent)),
    )


def incident_fact(obj: Mapping[str, object]) -> IncidentKpiFact | None:
    """An Incident object's KPI facts; None until the operator has handled it."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    assert isinstance(spec, Mapping)
    assert isinstance(status, Mapping)
    opened = parse_time(status.get("openedAt"))
    if opened is None or not status.get("priority"):
        return None
    sla = status.get("sla") or {}
    assert isinstance(sla, Mapping)
    origin = spec.get("origin") or {}
    assert isinstance(origin, Mapping)
    return IncidentKpiFact(
        priority=str(status["priority"]),
        state=str(spec.get("state") or "New"),
        opened_at=opened,
        acknowledged_at=parse_time(status.get("acknowledgedAt")),
        resolved_at=parse_time(status.get("resolvedAt")),
        response_breached=bool(sla.get("responseBreached")),
        resolution_breached=bool(sla.get("resolutionBreached")),
        caused_by_change=origin.get("type") == "change" or bool(status.get("suspectedCause")),
    )


def change_fact(obj: Mapping[str, object]) -> ChangeKpiFact | None:
    """A Change object's KPI facts: its type, phase, and when it was created and finished."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    assert isinstance(spec, Mapping)
    assert isinstance(status, Mapping)
    assert isinstance(meta, Mapping)
    created = parse_time(meta.get("creationTimestamp"))
    if created is None:
        return None
    phase = str(status.get("phase") or "")
    transitions = status.get("transitions") or []
    assert isinstance(transitions, list)
    entered = [parse_time(t.get("at")) for t in transitions if t.get("phase") == phase]
    finished = entered[-1] if entered and phase in OUTCOMES else None
    return ChangeKpiFact(
        type=str(spec.get("type") or "normal"),
        phase=phase,
        created_at=created,
        finished_at=finished,
    )
