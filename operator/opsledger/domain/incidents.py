"""Incident lifecycle: state transitions driven through the spec, the timeline, SLA timers.

People move an incident by editing its spec (state, assignee, resolution); the operator records
when each step happened. Response is due `respond` after opening and is met by acknowledging (any
state past New); resolution is due `resolve` after opening and is met by Resolved or Closed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from opsledger.domain.durations import go_duration
from opsledger.models.incident import IncidentState

ORDER = {
    IncidentState.NEW: 0,
    IncidentState.ACKNOWLEDGED: 1,
    IncidentState.IN_PROGRESS: 2,
    IncidentState.RESOLVED: 3,
    IncidentState.CLOSED: 4,
}


@dataclass(frozen=True)
class Targets:
    respond: timedelta
    resolve: timedelta


def targets_for(priority: str, incident_targets: Sequence[Mapping[str, str]]) -> Targets | None:
    """The ServiceLevel's respond/resolve targets for `priority`, if it sets any."""
    for target in incident_targets:
        if target.get("priority") == priority:
            return Targets(go_duration(target["respond"]), go_duration(target["resolve"]))
    return None


@dataclass
class Lifecycle:
    """The incident's recorded lifecycle: what status holds between reconciliations."""

    state: IncidentState
    opened_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    assignee: str | None = None
    priority: str | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)


def advance(
    previous: Lifecycle, *, state: str, assignee: str | None, priority: str, now: datetime
) -> Lifecycle:
    """The lifecycle after the spec says `state`, `assignee` and `priority`, observed at `now`.

    Skipped steps are filled in (New → Resolved also acknowledges); reopening a Resolved
    incident (back to InProgress) clears resolvedAt but keeps its history.
    """
    new = IncidentState(state)
    result = Lifecycle(
        state=previous.state,
        opened_at=previous.opened_at,
        acknowledged_at=previous.acknowledged_at,
        resolved_at=previous.resolved_at,
        assignee=previous.assignee,
        priority=previous.priority,
        timeline=list(previous.timeline),
    )

    def note(event: str, detail: str | None = None) -> None:
        entry: dict[str, Any] = {"at": now, "event": event}
        if detail:
            entry["detail"] = detail
        result.timeline.append(entry)

    if not result.timeline:
        note("Opened", f"priority {priority}")
    elif result.priority != priority:
        note("PriorityChanged", f"{result.priority} → {priority}")
    result.priority = priority
    if assignee != result.assignee:
        note("Assigned" if assignee else "Unassigned", assignee)
        result.assignee = assignee
    if new == result.state:
        return result
    if ORDER[new] >= ORDER[IncidentState.ACKNOWLEDGED] and result.acknowledged_at is None:
        result.acknowledged_at = now
        note("Acknowledged")
    if new == IncidentState.IN_PROGRESS:
        if result.resolved_at is not None:
            result.resolved_at = None
            note("Reopened")
        else:
            note("InProgress")
    if ORDER[new] >= ORDER[IncidentState.RESOLVED] and result.resolved_at is None:
        result.resolved_at = now
        note("Resolved")
    if new == IncidentState.CLOSED:
        note("Closed")
    result.state = new
    return result


@dataclass(frozen=True)
class SLA:
    respond_by: datetime
    resolve_by: datetime
    response_breached: bool
    resolution_breached: bool


def sla(lifecycle: Lifecycle, targets: Targets, now: datetime) -> SLA:
    """Due times, and whether each was missed (late, or overdue and not yet done)."""
    respond_by = lifecycle.opened_at + targets.respond
    resolve_by = lifecycle.opened_at + targets.resolve
    acked = lifecycle.acknowledged_at
    resolved = lifecycle.resolved_at
    return SLA(
        respond_by=respond_by,
        resolve_by=resolve_by,
        response_breached=(acked or now) > respond_by,
        resolution_breached=(resolved or now) > resolve_by,
    )


def next_deadline(lifecycle: Lifecycle, due: SLA) -> datetime | None:
    """The next moment a breach could begin (for a timer to look again)."""
    pending = []
    if lifecycle.acknowledged_at is None and not due.response_breached:
        pending.append(due.respond_by)
    if lifecycle.resolved_at is None and not due.resolution_breached:
        pending.append(due.resolve_by)
    return min(pending) if pending else None
