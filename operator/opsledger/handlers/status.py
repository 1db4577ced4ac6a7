"""The one status writer: applies a service's Outcome to the handler's patch.

Conditions are merged over those the object (and the patch) already hold by the table in
`domain/conditions.py`, which also decides the Events their changes post; observedGeneration is
written; and whenever Ready is set, the `opsledger_object_ready` gauge follows it, the same way
for every kind.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf

from opsledger.domain.conditions import READY, Summary, summarize
from opsledger.domain.outcome import Event, Outcome
from opsledger.models.common import ConditionStatus
from opsledger.models.crd import KindInfo
from opsledger.services.context import Context


def apply(
    ctx: Context, info: KindInfo, body: kopf.Body, patch: kopf.Patch, outcome: Outcome
) -> Summary:
    """Write `outcome` into `patch` and post its Events; returns the merged conditions."""
    previous = patch.status.get("conditions") or body.status.get("conditions")
    generation = body.metadata.get("generation")
    summary = summarize(
        info.kind, previous, outcome.conditions, now=ctx.clock(), generation=generation
    )
    patch.status.update(outcome.status)
    if outcome.conditions:
        patch.status["conditions"] = summary.wire()
    patch.status["observedGeneration"] = generation
    post(body, [*outcome.events, *summary.events])
    ready = next((c for c in reversed(outcome.conditions) if c.type == READY), None)
    if ready is not None:
        ready_gauge(ctx, info.kind, body.metadata, ready=ready.status == ConditionStatus.TRUE)
        outcome_label = "ready" if ready.status == ConditionStatus.TRUE else ready.reason
        ctx.metrics.reconciliations.labels(info.kind, outcome_label).inc()
    return summary


def post(body: Any, events: Iterable[Event]) -> None:
    """Post Events about `body` (a kopf Body or an object as the API server returned it)."""
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


def ready_gauge(ctx: Context, kind: str, metadata: Any, *, ready: bool) -> None:
    """`opsledger_object_ready` for one object."""
    namespace = str(metadata.get("namespace") or "")
    ctx.metrics.ready.labels(kind, namespace, str(metadata.get("name"))).set(int(ready))
