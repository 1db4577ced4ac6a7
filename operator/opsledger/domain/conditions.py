"""Conditions the Kubernetes way, and the one table that says what each condition type means.

One per type; lastTransitionTime moves only on a status change. `TYPES` says, per type, its
polarity (is True good, as for Ready, or bad, as for Conflict?) and which changes of it post an
Event, so every kind's status is summarised by the same rule (`summarize`), as Flux's summarize
helpers do. A kind may override a type (`KIND_TYPES`): a Change's Ready follows its phase, whose
transitions post their own Events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from opsledger.domain.outcome import ConditionUpdate, Event, EventType
from opsledger.models.common import Condition, ConditionStatus

READY = "Ready"
CMDB_SYNCED = "CMDBSynced"  # whether the object's record is in the CMDB remote


class Post(StrEnum):
    """Which changes of a condition post an Event."""

    NEVER = "never"
    ON_STATUS = "status"  # its status flips
    ON_REASON = "reason"  # its status or its reason changes


@dataclass(frozen=True)
class ConditionType:
    """What one condition type means: its polarity and when a change of it posts an Event."""

    name: str
    abnormal_true: bool = False  # True is the bad state (Conflict, Drifted, CapacityRisk)
    unknown_is_good: bool = False  # Unknown means "not applicable here", not "cannot tell"
    post: Post = Post.ON_REASON
    bad_only: bool = False  # post only on entering (or changing reason within) the bad state
    first_good: bool = False  # a condition seen for the first time in its good state posts too
    quiet_reasons: frozenset[str] = frozenset()  # bad, but waiting, not wrong: Normal Events
    bad_event_reason: str | None = None  # the Event's reason when bad (else the condition's)

    def is_bad(self, status: ConditionStatus) -> bool:
        if self.abnormal_true:
            return status == ConditionStatus.TRUE
        if self.unknown_is_good and status == ConditionStatus.UNKNOWN:
            return False
        return status != ConditionStatus.TRUE

    def event(self, before: Condition | None, after: ConditionUpdate) -> Event | None:
        """The Event a change from `before` to `after` posts, if any."""
        if self.post is Post.NEVER:
            return None
        bad = self.is_bad(after.status)
        if before is None:
            changed = bad or self.first_good
        elif self.post is Post.ON_STATUS:  # between two good states (False, Unknown) is no news
            changed = before.status != after.status and (bad or self.is_bad(before.status))
        else:
            changed = (before.status, before.reason) != (after.status, after.reason)
        if not changed or (self.bad_only and not bad):
            return None
        if not bad:
            return Event("Normal", after.reason, after.message)
        kind: EventType = "Normal" if after.reason in self.quiet_reasons else "Warning"
        return Event(kind, self.bad_event_reason or after.reason, after.message)


_CHANGE_WAITS = frozenset(
    {"AwaitingApproval", "OutsideWindow", "OutsideTemplate", "AwaitingReview"}
)

TYPES: dict[str, ConditionType] = {
    t.name: t
    for t in (
        ConditionType(READY, first_good=True),
        # Change gates: quiet while good, an Event for each new reason it is held
        ConditionType("Approved", bad_only=True, quiet_reasons=_CHANGE_WAITS),
        ConditionType("WindowOpen", bad_only=True, quiet_reasons=_CHANGE_WAITS),
        ConditionType("HealthGate", bad_only=True),
        ConditionType("Conflict", abnormal_true=True, bad_only=True),
        # Alertmanager silences while a change runs: Events when made and when expired
        ConditionType("Silenced", first_good=True, quiet_reasons=frozenset({"Ended"})),
        # an emergency change's post-implementation review: an Event when proposed, and done
        ConditionType("Reviewed", quiet_reasons=_CHANGE_WAITS),
        # ConfigurationItem
        ConditionType("Drifted", abnormal_true=True, post=Post.ON_STATUS),
        ConditionType("Healthy", post=Post.ON_STATUS),
        ConditionType("CapacityRisk", abnormal_true=True, post=Post.ON_STATUS),
        # ServiceLevel
        ConditionType("Measured", post=Post.ON_STATUS, first_good=True),
        ConditionType("BudgetExhausted", abnormal_true=True, post=Post.ON_STATUS),
        ConditionType("RulesPublished", first_good=True),
        # Incident
        ConditionType(
            "SLABreached", abnormal_true=True, post=Post.ON_STATUS, bad_event_reason="SLABreached"
        ),
    )
}

# kind → type → its meaning for that kind, where it differs from TYPES.
KIND_TYPES: dict[str, dict[str, ConditionType]] = {
    "Change": {
        READY: ConditionType(READY, post=Post.NEVER),  # its phase transitions post Events
        "CMDBSynced": ConditionType("CMDBSynced", bad_only=True),
    },
    "ConfigurationItem": {
        # thousands of items: an Event when one is held or retired, not for each one recorded
        READY: ConditionType(READY),
        # Unknown: no CMDB remote is configured, which is a setting, not an outage
        "CMDBSynced": ConditionType(
            "CMDBSynced",
            post=Post.ON_STATUS,
            unknown_is_good=True,
            bad_event_reason="CMDBUnavailable",
        ),
    },
}


def condition_type(kind: str, name: str) -> ConditionType:
    """The meaning of condition `name` on `kind` (a plain normal-true type when unlisted)."""
    return KIND_TYPES.get(kind, {}).get(name) or TYPES.get(name) or ConditionType(name)


@dataclass
class Summary:
    """Conditions after an outcome, the Events their changes post, and Ready if it is set."""

    conditions: list[Condition]
    events: list[Event] = field(default_factory=list)
    changed: bool = False  # some condition's status, reason or message differs

    def wire(self) -> list[dict[str, Any]]:
        return [c.to_wire() for c in self.conditions]

    def ready(self) -> bool | None:
        found = find(self.conditions, READY)
        return None if found is None else found.status == ConditionStatus.TRUE


def summarize(
    kind: str,
    previous: Any,
    updates: Iterable[ConditionUpdate],
    *,
    now: datetime,
    generation: int | None,
) -> Summary:
    """Apply `updates` to the stored conditions `previous`, by the table's rules."""
    conditions = parse_conditions(previous)
    events: list[Event] = []
    changed = False
    for update in updates:
        before = find(conditions, update.type)
        event = condition_type(kind, update.type).event(before, update)
        if event is not None:
            events.append(event)
        if before is None or (before.status, before.reason, before.message) != (
            update.status,
            update.reason,
            update.message,
        ):
            changed = True
        conditions = set_condition(
            conditions,
            type=update.type,
            status=update.status,
            reason=update.reason,
            message=update.message,
            now=now,
            generation=generation,
        )
    return Summary(conditions, events, changed)


def set_condition(
    conditions: Sequence[Condition],
    *,
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """Return `conditions` with the one of `type` replaced (or added).

    lastTransitionTime is kept when the status does not change, as the API conventions ask, so
    a reconcile that finds nothing new does not look like a transition.
    """
    previous = next((c for c in conditions if c.type == type), None)
    changed = previous is None or previous.status != status
    updated = Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=now if changed or previous is None else previous.last_transition_time,
        observed_generation=generation,
    )
    return [c for c in conditions if c.type != type] + [updated]


def parse_conditions(raw: Any) -> list[Condition]:
    """Conditions from a status as stored; entries that do not parse are dropped."""
    result: list[Condition] = []
    for item in raw or []:
        try:
            result.append(Condition.model_validate(item))
        except ValueError:
            continue
    return result


def find(conditions: Sequence[Condition], type: str) -> Condition | None:
    return next((c for c in conditions if c.type == type), None)
