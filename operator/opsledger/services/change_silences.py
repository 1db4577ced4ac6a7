"""Alertmanager silences for a running change: it does not page people for what it is doing.

While a change is InProgress or Verifying, Alertmanager holds a silence of its service's alerts
and one per target item (equality matchers on the namespace and the service or item labels the
receiver reads, as alerts that open Incidents carry them). They are created when the change
starts and expired when it ends; before a rollback they are expired first, so the change's own
failure pages. The silences' ids are kept in `status.silences`, so a restarted operator expires
exactly those, and never silences twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from opsledger.adapters.alertmanager import AlertmanagerUnavailableError
from opsledger.domain import changes
from opsledger.domain.outcome import Outcome
from opsledger.domain.times import parse_time
from opsledger.models.change import ChangePhase, ChangeSpec
from opsledger.models.common import ConditionStatus
from opsledger.services.alerts import routing
from opsledger.services.context import Context

log = logging.getLogger("opsledger.change")
SILENCED = "Silenced"
AT_LEAST = timedelta(hours=1)  # a silence lasts to the window's end, and at least this long


def matchers(ctx: Context, namespace: str, spec: ChangeSpec) -> list[tuple[str, dict[str, str]]]:
    """(what, matchers) of each silence a change holds: its service, then each target item."""
    labels = routing(ctx)
    found = [
        (
            f"service {spec.service}",
            {labels.namespace_label: namespace, labels.service_label: spec.service},
        )
    ]
    found += [
        (f"item {t}", {labels.namespace_label: namespace, labels.item_label: t})
        for t in spec.targets
    ]
    return found


async def keep(
    ctx: Context,
    *,
    namespace: str,
    name: str,
    spec: ChangeSpec,
    phase: ChangePhase | None,
    status: Mapping[str, Any],
    now: datetime,
) -> Outcome:
    """Silences held while the change runs, none otherwise."""
    outcome = Outcome()
    if ctx.alertmanager is None:
        return outcome
    held = list(status.get("silences") or [])
    try:
        if phase in changes.ACTIVE and not held:
            window_end = parse_time((status.get("window") or {}).get("end"))
            ends = max(window_end or now, now + AT_LEAST)
            comment = f"OpsLedger Change {namespace}/{name} is in progress: {spec.summary}"
            for what, match in matchers(ctx, namespace, spec):
                silence = await asyncio.to_thread(
                    ctx.alertmanager.silence,
                    match,
                    starts=now,
                    ends=ends,
                    created_by="opsledger",
                    comment=f"{comment} ({what})",
                )
                held.append(silence)
            outcome.status["silences"] = held
            log.info("silenced the alerts of change %s/%s: %s", namespace, name, ", ".join(held))
            outcome.condition(
                SILENCED,
                ConditionStatus.TRUE,
                "InProgress",
                f"{len(held)} Alertmanager silence(s) for the service and its target items "
                f"until the change ends: {', '.join(held)}",
            )
        elif phase not in changes.ACTIVE and held:
            await expire(ctx, held)
            outcome.status["silences"] = None
            outcome.condition(
                SILENCED, ConditionStatus.FALSE, "Ended", f"the change ended: {len(held)} expired"
            )
    except AlertmanagerUnavailableError as exc:
        log.warning("the silences of change %s/%s: %s", namespace, name, exc)
        if held and phase in changes.ACTIVE:
            outcome.status["silences"] = held  # the ones made before it failed
        outcome.condition(SILENCED, ConditionStatus.UNKNOWN, "AlertmanagerUnavailable", str(exc))
    return outcome


async def expire(ctx: Context, held: list[str]) -> None:
    """Expire these silences (before a rollback: the failure must page)."""
    if ctx.alertmanager is None:
        return
    for silence in held:
        await asyncio.to_thread(ctx.alertmanager.expire, silence)


async def expired_first(ctx: Context, held: list[str], change: str) -> bool:
    """Expire a change's silences before its rollback; False (logged) when Alertmanager cannot
    be asked: the rollback does not wait for it, and they are expired once the change ends."""
    try:
        await expire(ctx, held)
    except AlertmanagerUnavailableError as exc:
        log.warning("the silences of %s are not expired before its rollback: %s", change, exc)
        return False
    return True
