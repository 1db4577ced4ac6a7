"""Change handlers: the lifecycle timer.

One timer per Change drives it through its lifecycle, so a single writer owns its status; the
work is in `services/change.py`, the rules in `domain/change_lifecycle.py`.
"""

from __future__ import annotations

from typing import Any

import kopf

from opsledger.handlers import status
from opsledger.handlers.common import context, forget_on_delete, validated_spec
from opsledger.models import CHANGE
from opsledger.models.change import ChangeSpec
from opsledger.models.settings import Settings
from opsledger.services import change


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Attach the Change handlers to `registry`."""
    resource = ("opsledger.io", "v1alpha1", CHANGE.plural)

    @kopf.timer(
        *resource,
        registry=registry,
        id="lifecycle",
        interval=settings.change_interval,
        backoff=max(settings.change_interval, 5.0),
    )
    async def lifecycle(
        *, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        ctx = context(memo)
        if not ctx.leading:
            return  # a standby replica: the leader carries changes out
        spec = validated_spec(info=CHANGE, ctx=ctx, body=body, patch=patch)
        if not isinstance(spec, ChangeSpec):
            return  # InvalidSpec reported
        outcome = await change.tick(ctx, body, spec, ctx.views)
        status.apply(ctx, CHANGE, body, patch, outcome)

    forget_on_delete(CHANGE, registry)
