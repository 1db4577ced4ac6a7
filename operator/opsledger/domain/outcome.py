"""What a use case decided about one object: status fields, conditions to set, Events to post.

A service returns an `Outcome`; one writer in `handlers/status.py` applies it (conditions merged
through the table in `domain/conditions.py`, which also says which condition changes post an
Event, and the Ready gauge derived from Ready), so every kind reports the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from opsledger.models.common import ConditionStatus

EventType = Literal["Normal", "Warning"]


class ConditionUpdate(NamedTuple):
    """One condition to set: type, status, reason (CamelCase), message (for people)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


class Event(NamedTuple):
    """One Event to post about the object, besides those condition changes post."""

    type: EventType
    reason: str
    message: str


@dataclass
class Outcome:
    """Status fields, conditions and Events; applied together by the one status writer."""

    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[ConditionUpdate] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def condition(self, type_: str, status: ConditionStatus, reason: str, message: str) -> None:
        """Set condition `type_` (a later call for the same type wins)."""
        self.conditions.append(ConditionUpdate(type_, status, reason, message))

    def event(self, type_: EventType, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def merge(self, other: Outcome) -> None:
        """Take `other`'s fields, conditions and Events after this one's."""
        self.status.update(other.status)
        self.conditions.extend(other.conditions)
        self.events.extend(other.events)
