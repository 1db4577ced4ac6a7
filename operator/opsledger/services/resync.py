"""ConfigurationItem syncs from outside the item's own handlers (a source event, a timer, a
figure measured elsewhere): the item is read and written through the API under its lock, and
what there is to post is handed back to the handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsledger.domain import ci_lifecycle as rules
from opsledger.domain.conditions import READY, summarize
from opsledger.domain.outcome import ConditionUpdate, Event, Outcome
from opsledger.models.configitem import ConfigurationItemSpec, Lifecycle
from opsledger.services.configitem import (
    INFO,
    PLURAL,
    UNSET,
    ItemOutcome,
    Unset,
    commit_record,
    item_lock,
    render,
    sync_item,
)
from opsledger.services.context import Context


@dataclass
class Report:
    """What a sync outside the item's own handler did, for the handler to post: the item as
    read, the Events, and Ready as set (None when not set)."""

    obj: Mapping[str, Any]
    events: list[Event]
    ready: ConditionUpdate | None


async def _read_item(
    ctx: Context, namespace: str, name: str
) -> tuple[dict[str, Any], ConfigurationItemSpec] | None:
    """The item as the API server has it now and its spec; None when it is gone, being
    deleted (the retire handler records it) or invalid (its own handler reports that)."""
    assert ctx.kube is not None
    ci = await asyncio.to_thread(ctx.kube.get_custom, PLURAL, name, namespace)
    metadata = (ci or {}).get("metadata") or {}
    if ci is None or metadata.get("deletionTimestamp"):
        return None
    try:
        spec = ConfigurationItemSpec.model_validate(dict(ci.get("spec") or {}))
    except ValueError:
        return None
    return ci, spec


def _write_status(
    ctx: Context, namespace: str, name: str, ci: Mapping[str, Any], out: Outcome
) -> list[Event]:
    """Write `out`'s fields and conditions to the status of the item `ci` (as read before the
    sync) through the API; returns the Events the condition changes post."""
    assert ctx.kube is not None
    generation = (ci.get("metadata") or {}).get("generation")
    summary = summarize(
        INFO.kind,
        (ci.get("status") or {}).get("conditions"),
        out.conditions,
        now=ctx.clock(),
        generation=generation,
    )
    status = {**out.status, "conditions": summary.wire(), "observedGeneration": generation}
    ctx.kube.patch_status(PLURAL, name, namespace, status)
    return summary.events


def _amend(ctx: Context, namespace: str, name: str, out: ItemOutcome) -> None:
    """Write an outcome's spec and annotation changes to the item in one merge patch (for
    work outside the item's own handlers, which use Kopf's patch)."""
    assert ctx.kube is not None
    body: dict[str, Any] = {}
    if out.spec_patch:
        body["spec"] = out.spec_patch
    if out.annotations:
        body["metadata"] = {"annotations": out.annotations}
    if body:
        ctx.kube.patch_custom(PLURAL, name, namespace, body)


async def resync(
    ctx: Context,
    namespace: str,
    name: str,
    *,
    reason: str,
    source: dict[str, Any] | Unset | None = UNSET,
    indexes: Mapping[str, Any] | None = None,
) -> Report | None:
    """Sync a CI from outside its own handlers (a source event, a timer) through the API.

    The item is read under its lock, so it is the one the last sync of it left behind. None
    when there is nothing to sync (no client, or the item is gone, deleted or invalid)."""
    if ctx.kube is None:
        return None
    async with item_lock(ctx, namespace, name):
        found = await _read_item(ctx, namespace, name)
        if found is None:
            return None
        ci, spec = found
        metadata = ci.get("metadata") or {}
        previous = dict(ci.get("status") or {})
        out = await sync_item(
            ctx,
            namespace=namespace,
            name=name,
            spec=spec,
            status=previous,
            annotations=metadata.get("annotations") or {},
            reason=reason,
            source=source,
            indexes=indexes,
        )
        posted = await asyncio.to_thread(_write_status, ctx, namespace, name, ci, out)
        await asyncio.to_thread(_amend, ctx, namespace, name, out)
    ready = next((c for c in reversed(out.conditions) if c.type == READY), None)
    return Report(ci, [*out.events, *posted], ready)


async def rerecord(ctx: Context, namespace: str, name: str, *, reason: str) -> None:
    """Write the item's record again from what its status shows, without observing the source
    (status holds the last observation): for figures measured elsewhere, such as availability.

    An item never recorded yet is left to its own reconciliation, which includes them."""
    if ctx.kube is None or ctx.cmdb is None:
        return
    async with item_lock(ctx, namespace, name):
        found = await _read_item(ctx, namespace, name)
        if found is None:
            return
        ci, spec = found
        previous = dict(ci.get("status") or {})
        if not previous.get("cmdb") or spec.lifecycle == Lifecycle.RETIRED:
            return
        live, discovered = rules.last_seen(previous)
        out = Outcome()
        record = render(ctx, namespace, name, spec, previous, live=live, discovered=discovered)
        await commit_record(ctx, out, record, reason, previous)
        await asyncio.to_thread(_write_status, ctx, namespace, name, ci, out)
