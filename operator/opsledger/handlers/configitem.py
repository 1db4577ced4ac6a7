"""ConfigurationItem handlers: observe the source, commit the record, report drift and sync.

A CI is reconciled when it changes, when the operator starts, when its source object changes
(watch events on the source kinds), and on a timer while its record is not yet in the remote.
Every path renders the record from the cluster as it is now, so nothing pending lives only in
memory: a restart or an unreachable remote delays a record, never loses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from opsledger.adapters.gitcmdb import CMDBError
from opsledger.domain.classes import effective_class
from opsledger.domain.conditions import READY, parse_conditions, set_condition
from opsledger.domain.observe import observe, recorded, source_key
from opsledger.domain.records import ci_record, record_path, to_yaml
from opsledger.handlers.common import Context, context, on_spec, validated_spec
from opsledger.models import CONFIGURATION_ITEM
from opsledger.models.common import ConditionStatus
from opsledger.models.configitem import ConfigurationItemSpec, Lifecycle
from opsledger.models.settings import Settings

INFO = CONFIGURATION_ITEM
PLURAL = INFO.plural
CMDB_SYNCED = "CMDBSynced"
DRIFTED = "Drifted"
INDEX = "ci_by_source"

# (group, version, plural, kind) of the objects a CI can follow live.
SOURCE_KINDS = (
    ("apps", "v1", "deployments", "Deployment"),
    ("apps", "v1", "statefulsets", "StatefulSet"),
    ("apps", "v1", "daemonsets", "DaemonSet"),
    ("", "v1", "services", "Service"),
    ("", "v1", "nodes", "Node"),
    ("", "v1", "namespaces", "Namespace"),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ("networking.k8s.io", "v1", "ingresses", "Ingress"),
)


class _Unset:
    pass


UNSET = _Unset()


@dataclass
class Outcome:
    """What one reconciliation decided: status to write, Events to post, spec to amend."""

    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[tuple[str, ConditionStatus, str, str]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    spec_patch: dict[str, Any] | None = None


async def sync_item(
    ctx: Context,
    *,
    namespace: str,
    name: str,
    spec: ConfigurationItemSpec,
    status: Mapping[str, Any],
    reason: str,
    source: dict[str, Any] | _Unset | None = UNSET,
    deleted: bool = False,
) -> Outcome:
    """Observe the source (unless given), render the record, commit it, and say how it went."""
    out = Outcome()
    ref = spec.source
    live: dict[str, Any] = {}
    retired_reason = None
    if deleted:
        retired_reason = "the ConfigurationItem was deleted from the cluster"
        live = dict(status.get("observed") or {})
    elif ref is not None:
        if isinstance(source, _Unset):
            if ctx.kube is None:
                raise kopf.PermanentError("no Kubernetes client in the operator's context")
            try:
                source = await asyncio.to_thread(
                    ctx.kube.get, ref.api_version, ref.kind, ref.name, namespace
                )
            except LookupError as exc:
                out.conditions.append(
                    (
                        READY,
                        ConditionStatus.FALSE,
                        "UnknownSourceKind",
                        f"spec.source: {exc}; check apiVersion and kind",
                    )
                )
                return out
        if source is None:
            retired_reason = f"source {ref.kind} {ref.name} no longer exists"
            live = dict(status.get("observed") or {})  # the last thing we saw of it
            if spec.lifecycle != Lifecycle.RETIRED:
                out.spec_patch = {"lifecycle": Lifecycle.RETIRED.value}
                out.events.append(
                    (
                        "Warning",
                        "SourceDeleted",
                        f"{retired_reason}; the item is retired in the CMDB",
                    )
                )
        else:
            live = observe(source, ctx.redactor)
    record = ci_record(
        cluster=ctx.settings.cluster,
        namespace=namespace,
        name=name,
        spec=spec,
        observed=recorded(live),
        retired_reason=retired_reason,
    )
    out.status.update(
        {
            "class": effective_class(spec.class_, ref.kind if ref else None).value,
            "observed": live or None,
            "drift": record.drift,
        }
    )
    if record.drift:
        out.conditions.append(
            (
                DRIFTED,
                ConditionStatus.TRUE,
                "AttributesDiffer",
                "declared attributes differ from the source: " + ", ".join(record.drift),
            )
        )
    else:
        out.conditions.append(
            (DRIFTED, ConditionStatus.FALSE, "InSync", "declared attributes match the source")
        )
    await _commit(ctx, out, namespace=namespace, name=name, text=to_yaml(record), reason=reason)
    ready_reason = "Retired" if retired_reason else "Recorded"
    out.conditions.append(
        (
            READY,
            ConditionStatus.TRUE,
            ready_reason,
            retired_reason or "the item is observed and recorded",
        )
    )
    return out


async def _commit(
    ctx: Context, out: Outcome, *, namespace: str, name: str, text: str, reason: str
) -> None:
    path = record_path(ctx.settings.cluster, namespace, PLURAL, name)
    if ctx.cmdb is None:
        out.conditions.append(
            (
                CMDB_SYNCED,
                ConditionStatus.UNKNOWN,
                "NotConfigured",
                "no CMDB remote is configured (OPSLEDGER_CMDB_URL)",
            )
        )
        return
    try:
        commit = await ctx.cmdb.write(path, text, reason)
    except CMDBError as exc:
        message = f"{exc}. The record is written once the remote is reachable again."
        out.conditions.append((CMDB_SYNCED, ConditionStatus.FALSE, "RemoteUnavailable", message))
        out.events.append(("Warning", "CMDBUnavailable", message))
        return
    out.status["cmdb"] = {
        "path": path,
        "commit": commit.sha,
        "syncedAt": ctx.clock().isoformat().replace("+00:00", "Z"),
    }
    out.conditions.append(
        (
            CMDB_SYNCED,
            ConditionStatus.TRUE,
            "Committed" if commit.changed else "UpToDate",
            f"{path} at {commit.sha[:12]}",
        )
    )


def render_status(
    ctx: Context, previous: Mapping[str, Any], generation: int | None, out: Outcome
) -> dict[str, Any]:
    """The status to write: the outcome's fields plus the conditions merged in."""
    conditions = parse_conditions(previous.get("conditions"))
    for type_, status, reason, message in out.conditions:
        conditions = set_condition(
            conditions,
            type=type_,
            status=status,
            reason=reason,
            message=message,
            now=ctx.clock(),
            generation=generation,
        )
    return {
        **out.status,
        "conditions": [c.to_wire() for c in conditions],
        "observedGeneration": generation,
    }


def _changed(previous: Mapping[str, Any], type_: str, status: ConditionStatus) -> bool:
    before = next(
        (c for c in parse_conditions(previous.get("conditions")) if c.type == type_), None
    )
    return before is None or before.status != status


def _post(body: Any, previous: Mapping[str, Any], out: Outcome) -> None:
    """Events for what happened; condition-driven ones only when the condition flips."""
    for type_, reason, message in out.events:
        kopf.event(body, type=type_, reason=reason, message=message)
    for type_, status, reason, message in out.conditions:
        if type_ in (CMDB_SYNCED, DRIFTED) and _changed(previous, type_, status):
            if type_ == CMDB_SYNCED and status == ConditionStatus.FALSE:
                continue  # already posted as CMDBUnavailable
            kind = "Warning" if (type_ == DRIFTED and status == ConditionStatus.TRUE) else "Normal"
            kopf.event(body, type=kind, reason=reason, message=message)


def _duplicate_of(
    index: kopf.Index[Any, Any], spec: ConfigurationItemSpec, namespace: str, name: str
) -> str | None:
    """The elder CI that already claims this item's source, if any."""
    if spec.source is None:
        return None
    claims = sorted(index.get(source_key(spec.source.kind, namespace, spec.source.name), []))
    if len(claims) > 1 and claims[0][1:] != (namespace, name):
        return f"{claims[0][1]}/{claims[0][2]}"
    return None


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Attach the ConfigurationItem handlers to `registry`."""

    @kopf.index("opsledger.io", "v1alpha1", PLURAL, registry=registry, id=INDEX)
    def ci_by_source(
        *, namespace: str | None, name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any
    ) -> dict[tuple[str, str, str], tuple[str, str, str]] | None:
        source = spec.get("source") or {}
        if not source.get("kind") or not source.get("name"):
            return None
        key = source_key(source["kind"], namespace, source["name"])
        return {key: (str(meta.get("creationTimestamp", "")), namespace or "", name)}

    @on_spec(INFO, registry)
    async def reconcile(
        *,
        body: kopf.Body,
        patch: kopf.Patch,
        memo: kopf.Memo,
        namespace: str | None,
        name: str,
        ci_by_source: kopf.Index[Any, Any],
        **_: Any,
    ) -> None:
        namespace = namespace or ""
        ctx = context(memo)
        spec = validated_spec(info=INFO, ctx=ctx, body=body, patch=patch)
        if not isinstance(spec, ConfigurationItemSpec):
            return
        previous = dict(body.status)
        generation = body.metadata.get("generation")
        elder = _duplicate_of(ci_by_source, spec, namespace, name)
        if elder is not None and spec.source is not None:
            message = (
                f"{spec.source.kind} {spec.source.name} is already described by "
                f"ConfigurationItem {elder}; delete this item or point spec.source at "
                "another object"
            )
            out = Outcome(conditions=[(READY, ConditionStatus.FALSE, "DuplicateSource", message)])
        else:
            out = await sync_item(
                ctx,
                namespace=namespace,
                name=name,
                spec=spec,
                status=previous,
                reason=f"ConfigurationItem {namespace}/{name} generation {generation}",
            )
        patch.status.update(render_status(ctx, previous, generation, out))
        if out.spec_patch:
            patch.spec.update(out.spec_patch)
        _post(body, previous, out)
        _record_ready(ctx, namespace, name, out)

    @kopf.timer(
        "opsledger.io",
        "v1alpha1",
        PLURAL,
        registry=registry,
        id="retry-cmdb",
        interval=settings.cmdb_retry_interval,
        idle=settings.cmdb_retry_interval,
    )
    async def retry_unsynced(
        *, body: kopf.Body, memo: kopf.Memo, namespace: str | None, name: str, **_: Any
    ) -> None:
        """While a record is not in the remote, try again every cmdb_retry_interval seconds."""
        synced = next(
            (c for c in parse_conditions(body.status.get("conditions")) if c.type == CMDB_SYNCED),
            None,
        )
        if synced is None or synced.status != ConditionStatus.FALSE:
            return
        await _resync(
            context(memo),
            body,
            reason=f"ConfigurationItem {namespace}/{name}: "
            "retry after the CMDB remote was unreachable",
        )

    @kopf.on.delete("opsledger.io", "v1alpha1", PLURAL, registry=registry, id="retire")
    async def retire(
        *, body: kopf.Body, memo: kopf.Memo, namespace: str | None, name: str, **_: Any
    ) -> None:
        namespace = namespace or ""
        """A deleted item stays in the CMDB as retired; deletion waits until that is written."""
        ctx = context(memo)
        try:
            spec = ConfigurationItemSpec.model_validate(dict(body.spec))
        except ValueError:
            return  # an invalid item never had a record
        out = await sync_item(
            ctx,
            namespace=namespace,
            name=name,
            spec=spec,
            status=dict(body.status),
            deleted=True,
            reason=f"ConfigurationItem {namespace}/{name} deleted",
        )
        if any(t == CMDB_SYNCED and st == ConditionStatus.FALSE for t, st, _, _ in out.conditions):
            raise kopf.TemporaryError(
                "the CMDB remote is unreachable; retrying", delay=settings.cmdb_retry_interval
            )
        ctx.metrics.forget(INFO.kind, namespace, name)

    for group, version, plural, kind in SOURCE_KINDS:
        _register_source_watch(registry, group, version, plural, kind)


async def _resync(
    ctx: Context,
    ci: Mapping[str, Any],
    *,
    reason: str,
    source: dict[str, Any] | _Unset | None = UNSET,
) -> None:
    """Reconcile a CI from outside its own handlers (a source event, a retry) via the API."""
    if ctx.kube is None:
        return
    metadata = ci.get("metadata", {})
    namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
    spec = ConfigurationItemSpec.model_validate(dict(ci.get("spec") or {}))
    previous = dict(ci.get("status") or {})
    generation = metadata.get("generation")
    out = await sync_item(
        ctx,
        namespace=namespace,
        name=name,
        spec=spec,
        status=previous,
        reason=reason,
        source=source,
    )
    status = render_status(ctx, previous, generation, out)
    await asyncio.to_thread(ctx.kube.patch_status, PLURAL, name, namespace, status)
    if out.spec_patch:
        await asyncio.to_thread(ctx.kube.patch_spec, PLURAL, name, namespace, out.spec_patch)
    _post(ci, previous, out)
    _record_ready(ctx, namespace, name, out)


def _record_ready(ctx: Context, namespace: str, name: str, out: Outcome) -> None:
    ready = next((s for t, s, _, _ in reversed(out.conditions) if t == READY), None)
    if ready is not None:
        ctx.metrics.ready.labels(INFO.kind, namespace, name).set(int(ready == ConditionStatus.TRUE))
        ctx.metrics.reconciliations.labels(
            INFO.kind, "ready" if ready == "True" else "not-ready"
        ).inc()


def _register_source_watch(
    registry: kopf.OperatorRegistry, group: str, version: str, plural: str, kind: str
) -> None:
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
        if event.get("type") is None:
            return  # the initial listing: every CI's resume handler already observes it
        metadata = body.get("metadata", {})
        key = source_key(kind, metadata.get("namespace"), str(metadata.get("name")))
        index: kopf.Index[Any, Any] = kwargs[INDEX]  # Kopf passes indexes by their id
        claims = sorted(index.get(key, []))
        if not claims:
            return
        ctx = context(memo)
        _, namespace, name = claims[0]  # the elder claim owns the source
        if ctx.kube is None:
            return
        ci = await asyncio.to_thread(ctx.kube.get_custom, PLURAL, name, namespace)
        if ci is None:
            return
        deleted = event.get("type") == "DELETED"
        what = "deleted" if deleted else f"changed (generation {metadata.get('generation')})"
        await _resync(
            ctx,
            ci,
            reason=f"ConfigurationItem {namespace}/{name}: {kind} {metadata.get('name')} {what}",
            source=None if deleted else dict(body),
        )
