"""Keeping `ctx.leading` true in exactly one replica (domain/leadership.py says which).

Standalone (no OPSLEDGER_PEERING) the one operator leads. With peering, each replica reads the
peering object every few seconds and leads while no live peer outranks it; a failure to read
it stands the replica by (it could not write anything then either). The leader also keeps a
coordination.k8s.io Lease (OPSLEDGER_LEADER_LEASE_NAMESPACE) saying who leads, for kubectl and
other tools; a standby never writes it, and a new leader takes it over.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from opsledger.domain.leadership import judge
from opsledger.services.context import Context

log = logging.getLogger("opsledger.leadership")


async def follow(ctx: Context) -> None:
    """Judge once whether this replica leads, and say so when that changes."""
    settings = ctx.settings
    if settings.peering is None:
        ctx.leading = True
        ctx.metrics.leader.set(1)
        return
    assert ctx.kube is not None
    namespace = settings.namespaces[0] if settings.namespaces else None
    try:
        peers = await asyncio.to_thread(ctx.kube.peers, settings.peering, namespace)
    except Exception as exc:
        verdict_leading, reason = False, f"standing by: the peering cannot be read ({exc})"
    else:
        verdict = judge(peers or {}, ctx.identity, settings.priority, datetime.now(UTC))
        verdict_leading, reason = verdict.leading, verdict.reason
    if verdict_leading != ctx.leading or reason != ctx.leadership_reason:
        log.info("replica %s is %s", ctx.identity, reason)
    ctx.leading, ctx.leadership_reason = verdict_leading, reason
    ctx.metrics.leader.set(1 if verdict_leading else 0)
    if verdict_leading and settings.leader_lease_namespace:
        try:
            await asyncio.to_thread(
                ctx.kube.hold_lease,
                settings.peering,
                settings.leader_lease_namespace,
                ctx.identity,
                int(settings.peering_lifetime),
            )
        except Exception as exc:  # the record of who leads, not the leadership: said, not fatal
            log.warning(
                "the leader Lease %s/%s is not kept: %s",
                settings.leader_lease_namespace,
                settings.peering,
                exc,
            )
