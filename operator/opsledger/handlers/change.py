"""Change handlers: the three indexes a Change's tick reads, and the lifecycle timer.

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
from opsledger.services.indexes import CHANGE_PLANS, CRITICALITY, SERVICE_LEVELS


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Attach the Change handlers to `registry`."""
    resource = ("opsledger.io", "v1alpha1", CHANGE.plural)

    @kopf.index("opsledger.io", "v1alpha1", "servicelevels", registry=registry, id=SERVICE_LEVELS)
    def change_service_levels(
        *, namespace: str | None, spec: kopf.Spec, status: kopf.Status, **_: Any
    ) -> dict[tuple[str, str], dict[str, Any]]:
        if not spec.get("service"):
            return {}
        return {(namespace or "", spec["service"]): {"spec": dict(spec), "status": dict(status)}}

    @kopf.index(*resource, registry=registry, id=CHANGE_PLANS)
    def change_plans(
        *, namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status, **_: Any
    ) -> dict[str, tuple[Any, ...]]:
        window = status.get("window") or {}
        schedule = spec.get("schedule") or {}
        return {
            namespace or "": (
                name,
                tuple(spec.get("targets") or ()),
                window.get("start") or schedule.get("notBefore"),
                window.get("end") or schedule.get("notAfter"),
                status.get("phase"),
                (status.get("execution") or {}).get("finishedAt"),
            )
        }

    @kopf.index("opsledger.io", "v1alpha1", "configurationitems", registry=registry, id=CRITICALITY)
    def change_item_criticality(
        *, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
    ) -> dict[str, str]:
        return {f"{namespace}/{name}": str(spec.get("criticality") or "medium")}

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
        spec = validated_spec(info=CHANGE, ctx=ctx, body=body, patch=patch)
        if not isinstance(spec, ChangeSpec):
            return  # InvalidSpec reported
        outcome = await change.tick(ctx, body, spec, kwargs)
        status.apply(ctx, CHANGE, body, patch, outcome)

    forget_on_delete(CHANGE, registry)
