"""The cross-object views' Kopf side: filled before the watches start (a start-up activity, so
every handler sees every object from its first call, as Kopf's indexes promised, without their
per-object start-up barrier), kept by a watch-event handler per kind, listed again now and then.
"""

from __future__ import annotations

from typing import Any

import kopf

from opsledger.domain.views import INDEXERS
from opsledger.handlers.common import context, in_background
from opsledger.services import views


def register(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.startup(registry=registry, id="fill-views")
    async def fill(memo: kopf.Memo, **_: Any) -> None:
        await views.refresh(context(memo))

    for plural in INDEXERS:
        _keep(registry, plural)

    in_background(
        registry,
        "views-refresh",
        lambda ctx: views.keep_refreshing(ctx) if ctx.kube is not None else None,
    )


def _keep(registry: kopf.OperatorRegistry, plural: str) -> None:
    @kopf.on.event("opsledger.io", "v1alpha1", plural, registry=registry, id=f"view-{plural}")
    async def keep(*, event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        ctx = context(memo)
        if event.get("type") == "DELETED":
            ctx.views.forget(plural, body)
        else:
            ctx.views.observe(plural, body)
