"""Suspending the CronJobs of frozen services for the freeze (domain/freezes.py says which),
and resuming them after: one pass of a loop only the leader runs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from opsledger.domain.freezes import SUSPENDED_BY, SUSPENDED_LABEL, action, frozen_cronjobs
from opsledger.domain.views import SERVICE_LEVELS
from opsledger.services.context import Context

log = logging.getLogger("opsledger.freezes")


async def keep_cronjobs(ctx: Context) -> None:
    """Suspend what a freeze covers now; resume what the operator suspended and no freeze
    covers any more."""
    kube = ctx.kube
    if kube is None:
        return
    levels = {key: values[0]["spec"] for key, values in ctx.views[SERVICE_LEVELS].items() if values}
    now = ctx.clock()
    frozen: dict[tuple[str, str], Any] = {}
    if any(level.get("freezes") for level in levels.values()):
        items = await asyncio.to_thread(kube.list_custom, "configurationitems")
        frozen = frozen_cronjobs(items, levels, now)
    suspended = await asyncio.to_thread(
        kube.labelled, "batch/v1", "CronJob", f"{SUSPENDED_LABEL}=true"
    )
    candidates = {(str(c["metadata"]["namespace"]), str(c["metadata"]["name"])) for c in suspended}
    for namespace, name in sorted(candidates | set(frozen)):
        cronjob = await asyncio.to_thread(kube.get, "batch/v1", "CronJob", name, namespace)
        if cronjob is None:
            continue
        freeze = frozen.get((namespace, name))
        patch = action(cronjob, freeze)
        if patch is None:
            continue
        await asyncio.to_thread(
            kube.patch, "batch/v1", "CronJob", name, namespace, patch_type="merge", body=patch
        )
        reason, message = (
            (
                "SuspendedForFreeze",
                f"suspended for the freeze {patch['metadata']['annotations'][SUSPENDED_BY]}",
            )
            if freeze is not None
            else ("ResumedAfterFreeze", "the freeze is over: resumed")
        )
        log.info("CronJob %s/%s: %s", namespace, name, message)
        await asyncio.to_thread(
            kube.post_event,
            cronjob,
            type="Normal",
            reason=reason,
            message=message,
            component="opsledger",
        )
