"""ServiceRequest handlers: the spec reconciler, and a follow-up timer that looks again while the
request is open (its Change moving on, its fulfilment target passing); the work is in
services/service_request.py."""

from __future__ import annotations

from typing import Any

import kopf

from opsledger.handlers import status
from opsledger.handlers.common import (
    context,
    every_idle,
    forget_on_delete,
    in_background,
    on_spec,
    retry_on,
    validated_spec,
)
from opsledger.models import SERVICE_REQUEST
from opsledger.models.request import ServiceRequestSpec
from opsledger.models.settings import Settings
from opsledger.services import service_catalog
from opsledger.services import service_request as requests


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Attach the ServiceRequest handlers to `registry`."""

    async def _reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo) -> None:
        ctx = context(memo)
        spec = validated_spec(info=SERVICE_REQUEST, ctx=ctx, body=body, patch=patch)
        if not isinstance(spec, ServiceRequestSpec):
            return
        outcome, failed = await requests.reconcile(ctx, body, spec, ctx.views)
        status.apply(ctx, SERVICE_REQUEST, body, patch, outcome)
        retry_on(failed)

    @on_spec(SERVICE_REQUEST, registry)
    async def reconcile(
        *, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        await _reconcile(body, patch, memo)

    @every_idle(SERVICE_REQUEST, registry, id="follow", interval=settings.request_interval)
    async def follow(*, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
        """Follow the fulfilling Change and the target while the request is open."""
        if requests.open_request(body):
            await _reconcile(body, patch, memo)

    forget_on_delete(SERVICE_REQUEST, registry)
    in_background(
        registry,
        "catalog",
        lambda ctx: (
            service_catalog.keep_publishing(ctx)
            if ctx.kube is not None and ctx.cmdb is not None
            else None
        ),
    )
