"""Periodic work over every ConfigurationItem, done by one loop each rather than a Kopf timer
per item (at 10,000 items two per-item timers were about a thousand handler runs a second):

- `recount`: keep status.dependents current as other items' relationships change (written
  only when it differs), and resync a Service item whose exposes edges no longer match the
  workloads it selects;
- `retry_unsynced`: resync every item whose record has not reached the CMDB yet.

Both read the views (domain/views.py ITEMS, DEPENDENTS, POD_LABELS), not the API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from opsledger.domain import ci_lifecycle as rules
from opsledger.domain.views import DEPENDENTS, ITEMS, POD_LABELS
from opsledger.models.common import ConditionStatus
from opsledger.services.configitem import INFO, PLURAL
from opsledger.services.context import Context
from opsledger.services.resync import Report, resync
from opsledger.services.status import post_events

log = logging.getLogger("opsledger.sweeps")
YIELD_EVERY = 200  # items between two returns to the event loop


def _items(ctx: Context) -> list[tuple[str, dict[str, Any]]]:
    return ctx.views[ITEMS].singles()


async def recount(ctx: Context) -> int:
    """One pass: returns how many items were written or resynced."""
    if ctx.kube is None:
        return 0
    done = 0
    for count, (key, state) in enumerate(_items(ctx), start=1):
        namespace, name = key.split("/", 1)
        if rules.exposes_stale(state, ctx.views[POD_LABELS], namespace):
            reason = f"ConfigurationItem {key}: workloads it selects changed"
            await _resync(ctx, namespace, name, reason)
            done += 1
        else:
            dependents = rules.count_dependents(ctx.views[DEPENDENTS], key)
            if state["status"].get("dependents") != dependents:
                with contextlib.suppress(LookupError):
                    await asyncio.to_thread(
                        ctx.kube.patch_status, PLURAL, name, namespace, {"dependents": dependents}
                    )
                done += 1
        if count % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return done


async def retry_unsynced(ctx: Context) -> int:
    """One pass: resync every item whose CMDBSynced is False, together, so their records
    join one batch (as many at once as a batch holds); returns how many."""
    unsynced = [k for k, s in _items(ctx) if s["status"].get("unsynced")]
    gate = asyncio.Semaphore(ctx.settings.cmdb_max_batch)

    async def retry(key: str) -> None:
        namespace, name = key.split("/", 1)
        async with gate:
            log.info("ConfigurationItem %s: writing its record to the CMDB again", key)
            reason = f"ConfigurationItem {key}: retry after the CMDB write failed"
            await _resync(ctx, namespace, name, reason)

    await asyncio.gather(*(retry(k) for k in unsynced))
    return len(unsynced)


async def _resync(ctx: Context, namespace: str, name: str, reason: str) -> None:
    report = await resync(ctx, namespace, name, reason=reason, indexes=ctx.views)
    await report_resync(ctx, report)


async def report_resync(ctx: Context, report: Report | None) -> None:
    """Post what a resync found and set the Ready gauge (outside any Kopf handler)."""
    if report is None or ctx.kube is None:
        return
    await post_events(ctx.kube, report.obj, report.events)
    if report.ready is not None:
        ready = report.ready.status == ConditionStatus.TRUE
        meta = report.obj.get("metadata") or {}
        ctx.metrics.ready.labels(INFO.kind, str(meta.get("namespace")), str(meta.get("name"))).set(
            int(ready)
        )
        ctx.metrics.reconciliations.labels(
            INFO.kind, "ready" if ready else report.ready.reason
        ).inc()
