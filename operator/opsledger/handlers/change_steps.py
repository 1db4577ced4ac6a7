"""What one tick of a Change's lifecycle works with: the Step, condition and index names."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import kopf

from opsledger.domain.conditions import READY, find, parse_conditions, set_condition
from opsledger.domain.windows import rfc3339
from opsledger.handlers.common import CHANGE_PLANS
from opsledger.models.change import ChangePhase
from opsledger.models.common import ConditionStatus

APPROVED = "Approved"
WINDOW_OPEN = "WindowOpen"
HEALTH_GATE = "HealthGate"
CMDB_SYNCED = "CMDBSynced"
STEP_ANNOTATION = "opsledger.io/change-step"  # "<change uid>/<step index>" on each patched target
SERVICE_LEVELS = "change_service_levels"  # (namespace, service) → the ServiceLevel's spec, status
PLANS = CHANGE_PLANS
CRITICALITY = "change_item_criticality"  # "namespace/name" → the item's criticality
CONFLICT = "Conflict"
QUIET_REASONS = frozenset({"AwaitingApproval", "OutsideWindow"})  # waiting, not wrong
# Phases in which the change's Ready condition is False.
UNHAPPY = frozenset({ChangePhase.REJECTED, ChangePhase.FAILED, ChangePhase.ROLLED_BACK})


@dataclass
class Step:
    """What one tick decided: the status patch, Events to post."""

    body: kopf.Body
    now: datetime
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.blocked_by: list[str] = []  # conflicting changes in progress now
        self.affected: list[str] = []  # targets and what depends on them
        self.unknown_targets: list[str] = []  # targets no ConfigurationItem is known for
        self._conditions = parse_conditions(self.body.status.get("conditions"))
        self.phase = phase_of(self.body.status.get("phase"))
        self.transitions = list(self.body.status.get("transitions") or [])

    def enter(self, phase: ChangePhase, reason: str, *, warning: bool = False) -> None:
        self.phase = phase
        self.status["phase"] = phase.value
        self.transitions.append({"phase": phase.value, "at": rfc3339(self.now), "reason": reason})
        self.status["transitions"] = self.transitions
        self.events.append(("Warning" if warning else "Normal", phase.value, reason))

    def condition(self, type_: str, value: ConditionStatus, reason: str, message: str) -> None:
        before = find(self._conditions, type_)
        self._conditions = set_condition(
            self._conditions,
            type=type_,
            status=value,
            reason=reason,
            message=message,
            now=self.now,
            generation=self.body.metadata.get("generation"),
        )
        self.status["conditions"] = [c.to_wire() for c in self._conditions]
        changed = before is None or before.status != value or before.reason != reason
        # Conflict is bad when True; the others are bad when not True.
        bad = (value == ConditionStatus.TRUE) == (type_ == CONFLICT)
        if changed and type_ != READY and bad:
            kind = "Normal" if reason in QUIET_REASONS else "Warning"
            self.events.append((kind, reason, message))

    def synced(self) -> bool:
        found = find(self._conditions, CMDB_SYNCED)
        return found is not None and found.status == ConditionStatus.TRUE

    def merged_status(self) -> dict[str, Any]:
        return {**dict(self.body.status), **self.status}


def phase_of(value: Any) -> ChangePhase | None:
    try:
        return ChangePhase(value) if value else None
    except ValueError:
        return None


def moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
