"""ConfigurationItem use cases: observe the source, commit the record, report drift and sync.

A CI is synced when it changes, when the operator starts, when its source object changes, and
on a timer while its record is not yet in the remote. Every path renders the record from the
cluster as it is now, so nothing pending lives only in memory: a restart or an unreachable
remote delays a record, never loses it. The paths take one lock per item (kept in the
Context), so two of them never render and write one record at once. The rules (retire and
restore, duplicate claims, relationships) are in `domain/ci_lifecycle.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsledger.domain import ci_lifecycle as rules
from opsledger.domain.ci_lifecycle import Amendment
from opsledger.domain.classes import effective_class
from opsledger.domain.conditions import CMDB_SYNCED, READY
from opsledger.domain.observe import WORKLOAD_KINDS, observe, recorded
from opsledger.domain.outcome import Outcome
from opsledger.domain.records import ci_record, record_path, to_yaml
from opsledger.domain.times import rfc3339
from opsledger.domain.views import BY_SOURCE, DEPENDENTS, POD_LABELS
from opsledger.models import CONFIGURATION_ITEM
from opsledger.models.common import ConditionStatus, ObjectReference
from opsledger.models.configitem import ConfigurationItemSpec, Lifecycle, Relationship
from opsledger.models.records import ConfigurationItemRecord
from opsledger.services import guard_scope
from opsledger.services.context import Context
from opsledger.services.errors import RetryLaterError
from opsledger.services.records import write_record

log = logging.getLogger("opsledger")

INFO = CONFIGURATION_ITEM
PLURAL = INFO.plural


class NoClientError(RuntimeError):
    """The Context has no Kubernetes client, so a source cannot be observed (a wiring error)."""


class Unset:
    pass


UNSET = Unset()  # "observe the source yourself" (None: the source is gone)


@dataclass
class ItemOutcome(Outcome):
    """An Outcome plus the changes to the item itself: a spec patch and annotations."""

    spec_patch: dict[str, Any] | None = None
    annotations: dict[str, str | None] = field(default_factory=dict)  # None removes one

    def amend(self, amendment: Amendment) -> None:
        self.spec_patch = amendment.spec_patch
        self.annotations = amendment.annotations
        self.events.extend(amendment.events)


def item_lock(ctx: Context, namespace: str, name: str) -> asyncio.Lock:
    """The lock held while one item is observed, rendered and written (made on first use)."""
    key = f"{namespace}/{name}"
    lock = ctx.item_locks.get(key)
    if lock is None:
        lock = ctx.item_locks[key] = asyncio.Lock()
    return lock


async def reconcile(
    ctx: Context,
    *,
    namespace: str,
    name: str,
    spec: ConfigurationItemSpec,
    status: Mapping[str, Any],
    annotations: Mapping[str, str],
    reason: str,
    indexes: Mapping[str, Any],
) -> ItemOutcome:
    """The item's own reconciliation: refused while an elder item claims its source, else
    synced under its lock."""
    elder = rules.duplicate_of(indexes.get(BY_SOURCE) or {}, spec, namespace, name)
    if elder is not None and spec.source is not None:
        return ItemOutcome(conditions=[rules.duplicate_condition(spec.source, elder)])
    async with item_lock(ctx, namespace, name):
        return await sync_item(
            ctx,
            namespace=namespace,
            name=name,
            spec=spec,
            status=status,
            annotations=annotations,
            reason=reason,
            indexes=indexes,
        )


async def sync_item(
    ctx: Context,
    *,
    namespace: str,
    name: str,
    spec: ConfigurationItemSpec,
    status: Mapping[str, Any],
    reason: str,
    annotations: Mapping[str, str] | None = None,
    source: dict[str, Any] | Unset | None = UNSET,
    deleted: bool = False,
    indexes: Mapping[str, Any] | None = None,
) -> ItemOutcome:
    """Observe the source (unless given), render the record, commit it, and say how it went.

    Callers hold the item's lock (`item_lock`)."""
    out = ItemOutcome()
    ref = spec.source
    live: dict[str, Any] = {}
    discovered: list[Relationship] = []
    retired_reason = None
    indexes = indexes or {}
    if deleted:
        retired_reason = "the ConfigurationItem was deleted from the cluster"
        live, discovered = rules.last_seen(status)
    elif ref is not None:
        if isinstance(source, Unset):
            if ctx.kube is None:
                raise NoClientError("no Kubernetes client in the operator's context")
            try:
                source = await asyncio.to_thread(
                    ctx.kube.get, ref.api_version, ref.kind, ref.name, namespace
                )
            except LookupError as exc:
                out.condition(
                    READY,
                    ConditionStatus.FALSE,
                    "UnknownSourceKind",
                    f"spec.source: {exc}; check apiVersion and kind",
                )
                return out
        if source is None:
            retired_reason = f"source {ref.kind} {ref.name} no longer exists"
            live, discovered = rules.last_seen(status)  # the last thing we saw of it
            if spec.lifecycle != Lifecycle.RETIRED:
                out.amend(rules.retire(spec.lifecycle, retired_reason))
        else:
            await _keep_label(ctx, name, spec=spec, ref=ref, source=source, namespace=namespace)
            spec, amendment = rules.restore(spec, ref, annotations or {})
            out.amend(amendment)
            live = observe(source, ctx.redactor)
            nodes = await _pod_nodes(ctx, ref.kind, source, namespace)
            discovered = rules.discover(
                ref,
                source,
                live,
                namespace=namespace,
                name=name,
                by_source=indexes.get(BY_SOURCE) or {},
                pod_labels=indexes.get(POD_LABELS) or {},
                nodes=nodes,
            )
    record = render(
        ctx,
        namespace,
        name,
        spec,
        status,
        live=live,
        discovered=discovered,
        retired_reason=retired_reason,
    )
    out.status.update(
        {
            "class": effective_class(spec.class_, ref.kind if ref else None).value,
            "observed": live or None,
            "drift": record.drift,
            "relationships": [r.to_wire() for r in discovered],
        }
    )
    if DEPENDENTS in indexes:
        out.status["dependents"] = rules.count_dependents(
            indexes[DEPENDENTS], f"{namespace}/{name}"
        )
    out.conditions.append(rules.drift_condition(record.drift))
    await commit_record(ctx, out, record, reason, status)
    out.conditions.append(rules.ready_condition(retired_reason))
    return out


def render(
    ctx: Context,
    namespace: str,
    name: str,
    spec: ConfigurationItemSpec,
    status: Mapping[str, Any],
    *,
    live: dict[str, Any],
    discovered: list[Relationship],
    retired_reason: str | None = None,
) -> ConfigurationItemRecord:
    """The item's record from what was seen of its source (`live`, `discovered`) and the
    figures its status holds (availability)."""
    return ci_record(
        cluster=ctx.settings.cluster,
        namespace=namespace,
        name=name,
        spec=spec,
        observed=recorded(live),
        discovered=discovered,
        retired_reason=retired_reason,
        redactor=ctx.redactor,
        availability=status.get("availability"),
    )


async def commit_record(
    ctx: Context,
    out: Outcome,
    record: ConfigurationItemRecord,
    reason: str,
    status: Mapping[str, Any],
) -> None:
    """Write the record; status.cmdb says where it is when it was written (and the
    availability in `status` it holds)."""
    meta = record.metadata
    path = record_path(meta.cluster, meta.namespace, PLURAL, meta.name)
    written = await write_record(ctx, path, to_yaml(record), reason)
    if written.commit is not None:
        out.status["cmdb"] = {
            "path": path,
            "commit": written.commit.sha,
            "syncedAt": rfc3339(ctx.clock()),
            "availability": status.get("availability") or None,
        }
    out.conditions.append(written.synced)


async def _pod_nodes(ctx: Context, kind: str, source: dict[str, Any], namespace: str) -> list[str]:
    """The nodes a workload's pods run on (none for other kinds)."""
    selector = ((source.get("spec") or {}).get("selector") or {}).get("matchLabels")
    if kind not in WORKLOAD_KINDS or ctx.kube is None or not selector:
        return []
    return await asyncio.to_thread(ctx.kube.pod_nodes, namespace, selector)


async def retire_deleted(
    ctx: Context,
    *,
    namespace: str,
    name: str,
    spec: ConfigurationItemSpec,
    status: Mapping[str, Any],
) -> None:
    """Record a deleted item as retired in the CMDB; RetryLaterError until that is written.

    An item whose record was never written (no status.cmdb) leaves nothing to retire."""
    async with item_lock(ctx, namespace, name):
        if spec.source is not None and ctx.kube is not None:
            ref = spec.source
            try:
                source = await asyncio.to_thread(
                    ctx.kube.get, ref.api_version, ref.kind, ref.name, namespace
                )
            except LookupError:  # a kind the cluster does not serve: nothing was labelled
                source = None
            if source is not None:
                off = spec.model_copy(update={"protected": False})
                await _keep_label(ctx, name, spec=off, ref=ref, source=source, namespace=namespace)
        latest = await _latest_status(ctx, namespace, name, status)
        if latest.get("cmdb"):
            out = await sync_item(
                ctx,
                namespace=namespace,
                name=name,
                spec=spec,
                status=latest,
                deleted=True,
                reason=f"ConfigurationItem {namespace}/{name} deleted",
            )
            unsynced = next(
                (
                    c.message
                    for c in out.conditions
                    if c.type == CMDB_SYNCED and c.status == ConditionStatus.FALSE
                ),
                None,
            )
            if unsynced is not None:
                raise RetryLaterError(
                    f"the retired record is not in the CMDB yet: {unsynced}",
                    delay=ctx.settings.cmdb_retry_interval,
                )


async def _keep_label(
    ctx: Context,
    name: str,
    *,
    spec: ConfigurationItemSpec,
    ref: ObjectReference,
    source: dict[str, Any],
    namespace: str,
) -> None:
    """The guard's label on the source of a protecting item (services/guard_scope.py); a
    failure is logged, the item still reconciled (the guard then knows it by the item)."""
    try:
        await guard_scope.keep_label(
            ctx,
            item=name,
            protected=bool(spec.protected) and spec.lifecycle != Lifecycle.RETIRED,
            ref=ref,
            source=source,
            namespace=namespace,
        )
    except Exception as exc:
        log.warning("could not keep the guard's label on %s %s: %s", ref.kind, ref.name, exc)


def forget(ctx: Context, namespace: str, name: str) -> None:
    """Drop what the operator keeps of an item that is gone."""
    ctx.item_locks.pop(f"{namespace}/{name}", None)


async def _latest_status(
    ctx: Context, namespace: str, name: str, status: Mapping[str, Any]
) -> dict[str, Any]:
    """The item's status as the API server has it now (a sync may have written it since Kopf
    read the handler's body); `status` when there is no client or the item is gone."""
    if ctx.kube is not None:
        ci = await asyncio.to_thread(ctx.kube.get_custom, PLURAL, name, namespace)
        if ci is not None:
            return dict(ci.get("status") or {})
    return dict(status)
