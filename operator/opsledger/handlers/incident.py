"""Incident handlers: the spec reconciler and the SLA
clock (a timer that looks again at each next deadline); the work is in services/incident.py."""

from __future__ import annotations

from typing import Any

import kopf

from opsledger.handlers import status
from opsledger.handlers.common import (
    context,
    every_idle,
    forget_on_delete,
    on_spec,
    retry_on,
    validated_spec,
)
from opsledger.models import INCIDENT
from opsledger.models.incident import IncidentSpec
from opsledger.models.settings import Settings
from opsledger.services import incident as incidents


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Attach the Incident handlers to `registry`."""

    @on_spec(INCIDENT, registry)
    async def reconcile(
        *, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        ctx = context(memo)
        spec = validated_spec(info=INCIDENT, ctx=ctx, body=body, patch=patch)
        if not isinstance(spec, IncidentSpec):
            return
        outcome, failed = await incidents.reconcile(ctx, body, spec, ctx.views)
        status.apply(ctx, INCIDENT, body, patch, outcome)
        retry_on(failed)

    @every_idle(INCIDENT, registry, id="sla-clock", interval=settings.incident_interval)
    async def clock(*, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
        """Flag breaches as deadlines pass (nothing else changes the incident then)."""
        ctx = context(memo)
        outcome, failed = await incidents.tick(ctx, body, ctx.views)
        if outcome is not None:
            status.apply(ctx, INCIDENT, body, patch, outcome)
        retry_on(failed)

    forget_on_delete(INCIDENT, registry)
