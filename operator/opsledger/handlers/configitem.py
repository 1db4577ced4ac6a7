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
    count_dependents,
    elder_claim,
    exposes_stale,
    source_event_reason,
)
from opsledger.domain.conditions import CMDB_SYNCED, find, parse_conditions
from opsledger.domain.observe import source_key
from opsledger.domain.views import (
    BY_SOURCE,
    CHANGE_PLANS,
    DEPENDENTS,
    POD_LABELS,
    RELATIONS,
    changes_in_progress,
)
from opsledger.handlers import status
from opsledger.handlers.common import (
    context,
    every_idle,
    on_spec,
    retry_on,
    validated_spec,
)
from opsledger.models import CONFIGURATION_ITEM
from opsledger.models.common import ConditionStatus
from opsledger.models.configitem import ConfigurationItemSpec
from opsledger.models.settings import Settings
from opsledger.services import configitem as items
from opsledger.services.context import Context
from opsledger.services.discovery import discover_item
from opsledger.services.errors import RetryLaterError
from opsledger.services.resync import Report, resync

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
    _report(ctx, report)


def _report(ctx: Context, report: Report | None) -> None:
    """Post what a resync outside the item's own handler found, and set the Ready gauge."""
    if report is None:
        return
    status.post(report.obj, report.events)
    if report.ready is not None:
        ready = report.ready.status == ConditionStatus.TRUE
        status.ready_gauge(ctx, INFO.kind, report.obj.get("metadata") or {}, ready=ready)
        label = "ready" if ready else report.ready.reason
        ctx.metrics.reconciliations.labels(INFO.kind, label).inc()


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Attach the ConfigurationItem handlers to `registry`."""

    _register_timers(registry, settings)

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


def _register_timers(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Periodic work: dependents counts, and retries while the CMDB is unreachable."""

    @every_idle(INFO, registry, id="count-dependents", interval=settings.impact_interval)
    async def recount(
        *,
        body: kopf.Body,
        patch: kopf.Patch,
        memo: kopf.Memo,
        namespace: str | None,
        name: str,
        **kwargs: Any,
    ) -> None:
        """Keep status.dependents current as other items' relationships change, and a
        Service's exposes edges current as workload items learn their pod labels."""
        ctx = context(memo)
        if exposes_stale(body, ctx.views[POD_LABELS], namespace or ""):
            reason = f"ConfigurationItem {namespace}/{name}: workloads it selects changed"
            await _resync(ctx, namespace or "", name, reason=reason)
            return
        count = count_dependents(ctx.views[DEPENDENTS], f"{namespace}/{name}")
        if body.status.get("dependents") != count:
            patch.status["dependents"] = count

    @every_idle(INFO, registry, id="retry-cmdb", interval=settings.cmdb_retry_interval)
    async def retry_unsynced(
        *, body: kopf.Body, memo: kopf.Memo, namespace: str | None, name: str, **kwargs: Any
    ) -> None:
        """While a record is not in the remote, try again every cmdb_retry_interval seconds."""
        synced = find(parse_conditions(body.status.get("conditions")), CMDB_SYNCED)
        if synced is None or synced.status != ConditionStatus.FALSE:
            return
        reason = f"ConfigurationItem {namespace}/{name}: retry after the CMDB write failed"
        await _resync(context(memo), namespace or "", name, reason=reason)


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
