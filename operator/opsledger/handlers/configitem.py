"""ConfigurationItem handlers: reconcile on create/update/resume, retire on delete, the
dependents and CMDB-retry timers, and the watches on the source kinds.

The work is in `services/configitem.py` (sync, retirement), `services/resync.py` (syncs from
outside the item's own handlers) and `services/discovery.py`; the rules in
`domain/ci_lifecycle.py`. An item's own handlers write its status through the one status
writer; a resync writes through the API, and its Events and the Ready gauge are posted here.
"""

from __future__ import annotations

from typing import Any, cast

import kopf

from opsledger.domain.ci_lifecycle import (
    SOURCE_KINDS,
    elder_claim,
    source_event_reason,
)
from opsledger.domain.observe import source_key
from opsledger.domain.views import (
    BY_SOURCE,
    CHANGE_PLANS,
    RELATIONS,
    changes_in_progress,
)
from opsledger.handlers import status
from opsledger.handlers.common import (
    context,
    every,
    in_background,
    on_spec,
    retry_on,
    validated_spec,
)
from opsledger.models import CONFIGURATION_ITEM
from opsledger.models.configitem import ConfigurationItemSpec
from opsledger.models.settings import Settings
from opsledger.services import configitem as items
from opsledger.services import sweeps
from opsledger.services.context import Context
from opsledger.services.discovery import discover_item
from opsledger.services.errors import RetryLaterError
from opsledger.services.resync import resync

INFO = CONFIGURATION_ITEM
PLURAL = INFO.plural


async def _resync(
    ctx: Context,
    namespace: str,
    name: str,
    *,
    reason: str,
    source: dict[str, Any] | items.Unset | None = items.UNSET,
) -> None:
    """Sync an item from outside its own handlers, and post what the sync found."""
    report = await resync(ctx, namespace, name, reason=reason, source=source, indexes=ctx.views)
    await sweeps.report_resync(ctx, report)


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Attach the ConfigurationItem handlers to `registry`."""

    _register_sweeps(registry, settings)

    @on_spec(INFO, registry)
    async def reconcile(
        *,
        body: kopf.Body,
        patch: kopf.Patch,
        memo: kopf.Memo,
        namespace: str | None,
        name: str,
        **kwargs: Any,
    ) -> None:
        namespace = namespace or ""
        ctx = context(memo)
        spec = validated_spec(info=INFO, ctx=ctx, body=body, patch=patch)
        if not isinstance(spec, ConfigurationItemSpec):
            return
        generation = body.metadata.get("generation")
        try:
            out = await items.reconcile(
                ctx,
                namespace=namespace,
                name=name,
                spec=spec,
                status=dict(body.status),
                annotations=dict(body.metadata.annotations),
                reason=f"ConfigurationItem {namespace}/{name} generation {generation}",
                indexes=ctx.views,
            )
        except items.NoClientError as exc:
            raise kopf.PermanentError(str(exc)) from exc
        status.apply(ctx, INFO, body, patch, out)
        if out.spec_patch:
            patch.spec.update(out.spec_patch)
        for key, value in out.annotations.items():
            patch.metadata.annotations[key] = value

    @kopf.on.delete("opsledger.io", "v1alpha1", PLURAL, registry=registry, id="retire")
    async def retire(
        *, body: kopf.Body, memo: kopf.Memo, namespace: str | None, name: str, **_: Any
    ) -> None:
        """A deleted item stays in the CMDB as retired; deletion waits until that is written."""
        namespace = namespace or ""
        ctx = context(memo)
        try:
            spec = ConfigurationItemSpec.model_validate(dict(body.spec))
        except ValueError:
            spec = None  # an invalid item never had a record
        if spec is not None:
            try:
                await items.retire_deleted(
                    ctx, namespace=namespace, name=name, spec=spec, status=dict(body.status)
                )
            except RetryLaterError as exc:
                retry_on(exc)
        items.forget(ctx, namespace, name)
        ctx.metrics.forget(INFO.kind, namespace, name)

    for group, version, plural, kind in SOURCE_KINDS:
        _register_source_watch(registry, group, version, plural, kind)


def _register_sweeps(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Periodic work over every item: dependents counts, and retries while the CMDB is
    unreachable (one loop each, not a Kopf timer per item)."""
    in_background(
        registry,
        "recount-dependents",
        lambda ctx: every(
            settings.impact_interval,
            "recounting dependents",
            lambda: sweeps.recount(ctx),
            when=lambda: ctx.leading,
        ),
    )
    in_background(
        registry,
        "retry-cmdb",
        lambda ctx: every(
            settings.cmdb_retry_interval,
            "retrying CMDB writes",
            lambda: sweeps.retry_unsynced(ctx),
            when=lambda: ctx.leading,
        ),
    )


def _register_source_watch(
    registry: kopf.OperatorRegistry, group: str, version: str, plural: str, kind: str
) -> None:
    api_version = f"{group}/{version}" if group else version

    @kopf.on.event(
        group=group, version=version, plural=plural, registry=registry, id=f"follow-{plural}"
    )
    async def source_changed(
        *,
        event: kopf.RawEvent,
        body: kopf.Body,
        memo: kopf.Memo,
        **kwargs: Any,
    ) -> None:
        metadata = body.get("metadata", {})
        key = source_key(api_version, kind, metadata.get("namespace"), str(metadata.get("name")))
        ctx = context(memo)
        claim = elder_claim(ctx.views[BY_SOURCE], key)
        if claim is None:
            if event.get("type") != "DELETED":
                found = await discover_item(ctx, kind, dict(body), ctx.views[RELATIONS])
                if found is not None:
                    created, discovered = found
                    status.post(kopf.Body(cast(kopf.RawBody, created)), [discovered])
            return
        if event.get("type") is None:
            return  # the initial listing: every CI's resume handler already observes it
        _, namespace, name = claim  # the elder claim owns the source
        deleted = event.get("type") == "DELETED"
        what = "deleted" if deleted else f"changed (generation {metadata.get('generation')})"
        during = changes_in_progress(ctx.views[CHANGE_PLANS], namespace, name)
        reason = source_event_reason(
            namespace,
            name,
            kind=kind,
            source_name=str(metadata.get("name")),
            what=what,
            during=during,
        )
        source = None if deleted else dict(body)
        await _resync(ctx, namespace, name, reason=reason, source=source)
