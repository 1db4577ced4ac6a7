"""Conditions the Kubernetes way: one per type, lastTransitionTime moves only on a status change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from opsledger.models.common import Condition, ConditionStatus

READY = "Ready"


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
