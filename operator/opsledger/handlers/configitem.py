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
from typing import Any, cast

import kopf

from opsledger.adapters.gitcmdb import CMDBError
from opsledger.domain.classes import effective_class
from opsledger.domain.conditions import READY, parse_conditions, set_condition
from opsledger.domain.impact import ImpactGraph
from opsledger.domain.observe import observe, owner_relationships, recorded, selects, source_key
from opsledger.domain.records import ci_record, record_path, to_yaml
from opsledger.handlers.common import Context, context, on_spec, validated_spec
from opsledger.models import CONFIGURATION_ITEM
from opsledger.models.common import ConditionStatus
from opsledger.models.configitem import (
    ConfigurationItemSpec,
    Lifecycle,
    Relationship,
    RelationshipType,
)
from opsledger.models.settings import Settings

INFO = CONFIGURATION_ITEM
INFO_GROUP_VERSION = "opsledger.io/v1alpha1"
PLURAL = INFO.plural
CMDB_SYNCED = "CMDBSynced"
DRIFTED = "Drifted"
INDEX = "ci_by_source"  # source key → (created, namespace, name) of the CIs claiming it
POD_LABELS = "ci_pod_labels"  # namespace → (name, pod labels) of workload CIs
RELATIONS = "ci_relations"  # "namespace/name" → its (type, target) relationships

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
    indexes: Mapping[str, Any] | None = None,
) -> Outcome:
    """Observe the source (unless given), render the record, commit it, and say how it went."""
    out = Outcome()
    ref = spec.source
    live: dict[str, Any] = {}
    discovered: list[Relationship] = []
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
            discovered = _discover(ref.kind, source, namespace, name, indexes or {})
    record = ci_record(
        cluster=ctx.settings.cluster,
        namespace=namespace,
        name=name,
        spec=spec,
        observed=recorded(live),
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
    if indexes and RELATIONS in indexes:
        out.status["dependents"] = count_dependents(indexes[RELATIONS], f"{namespace}/{name}")
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


def _discover(
    kind: str, source: dict[str, Any], namespace: str, name: str, indexes: Mapping[str, Any]
) -> list[Relationship]:
    """Relationships the cluster shows: owners (partOf) and a Service's workloads (exposes)."""
    found = []
    by_source = indexes.get(INDEX) or {}
    for type_, owner_kind, owner_name in owner_relationships(source):
        claims = sorted(by_source.get(source_key(owner_kind, namespace, owner_name), []))
        if claims:
            _, owner_ns, owner = claims[0]
            found.append(
                Relationship(type=type_, target=qualify_target(owner_ns, owner, namespace))
            )
    if kind == "Service":
        selector = (source.get("spec") or {}).get("selector") or {}
        workloads = (indexes.get(POD_LABELS) or {}).get(namespace, [])
        for workload, labels in sorted(workloads):
            if workload != name and selects(selector, dict(labels)):
                found.append(Relationship(type=RelationshipType.EXPOSES, target=workload))
    return found


def _exposes_stale(body: Mapping[str, Any], pod_labels: Mapping[str, Any], namespace: str) -> bool:
    """Whether a Service item's recorded exposes edges differ from what its selector matches."""
    status = body.get("status") or {}
    if status.get("class") != "Service":
        return False
    selector = (status.get("observed") or {}).get("selector") or {}
    name = (body.get("metadata") or {}).get("name")
    matched = sorted(
        w
        for w, labels in pod_labels.get(namespace, [])
        if w != name and selects(selector, dict(labels))
    )
    recorded_edges = sorted(
        r["target"]
        for r in status.get("relationships") or []
        if r.get("type") == RelationshipType.EXPOSES
    )
    return matched != recorded_edges


def _indexes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The CI indexes among a handler's keyword arguments (Kopf passes them by id)."""
    return {k: kwargs[k] for k in (INDEX, POD_LABELS, RELATIONS) if k in kwargs}


def qualify_target(target_namespace: str, target: str, namespace: str) -> str:
    return target if target_namespace == namespace else f"{target_namespace}/{target}"


def count_dependents(index: Mapping[str, Any], item: str) -> int:
    """How many items depend on `item`, from the index of every item's relationships."""
    graph = ImpactGraph(
        {key: [pair for value in store for pair in value] for key, store in index.items()}
    )
    return len(graph.dependents(item))


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Attach the ConfigurationItem handlers to `registry`."""

    _register_indexes(registry)
    _register_timers(registry, settings)

    @on_spec(INFO, registry)
    async def reconcile(
        *,
        body: kopf.Body,
        patch: kopf.Patch,
        memo: kopf.Memo,
        namespace: str | None,
        name: str,
        ci_by_source: kopf.Index[Any, Any],
        **kwargs: Any,
    ) -> None:
        namespace = namespace or ""
        indexes = {INDEX: ci_by_source, **{k: kwargs[k] for k in (POD_LABELS, RELATIONS)}}
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
                indexes=indexes,
            )
        patch.status.update(render_status(ctx, previous, generation, out))
        if out.spec_patch:
            patch.spec.update(out.spec_patch)
        _post(body, previous, out)
        _record_ready(ctx, namespace, name, out)

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


def _register_indexes(registry: kopf.OperatorRegistry) -> None:
    """The indexes the CI handlers look items up in."""

    @kopf.index("opsledger.io", "v1alpha1", PLURAL, registry=registry, id=INDEX)
    def ci_by_source(
        *, namespace: str | None, name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any
    ) -> dict[tuple[str, str, str], tuple[str, str, str]] | None:
        source = spec.get("source") or {}
        if not source.get("kind") or not source.get("name"):
            return None
        key = source_key(source["kind"], namespace, source["name"])
        return {key: (str(meta.get("creationTimestamp", "")), namespace or "", name)}

    @kopf.index("opsledger.io", "v1alpha1", PLURAL, registry=registry, id=POD_LABELS)
    def ci_pod_labels(
        *, namespace: str | None, name: str, status: kopf.Status, **_: Any
    ) -> dict[str, tuple[str, tuple[tuple[str, str], ...]]] | None:
        labels = ((status.get("observed") or {}).get("podLabels")) or {}
        if not labels:
            return None
        return {namespace or "": (name, tuple(sorted(labels.items())))}

    @kopf.index("opsledger.io", "v1alpha1", PLURAL, registry=registry, id=RELATIONS)
    def ci_relations(
        *, namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status, **_: Any
    ) -> dict[str, tuple[tuple[str, str], ...]]:
        rels = [*(spec.get("relationships") or []), *(status.get("relationships") or [])]
        pairs = tuple(sorted({(r["type"], r["target"]) for r in rels if "type" in r}))
        return {f"{namespace}/{name}": pairs}


def _register_timers(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Periodic work: dependents counts, and retries while the CMDB is unreachable."""

    @kopf.timer(
        "opsledger.io",
        "v1alpha1",
        PLURAL,
        registry=registry,
        id="count-dependents",
        interval=settings.impact_interval,
        idle=settings.impact_interval,
    )
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
        if _exposes_stale(body, kwargs.get(POD_LABELS) or {}, namespace or ""):
            await _resync(
                context(memo),
                body,
                indexes=_indexes(kwargs),
                reason=f"ConfigurationItem {namespace}/{name}: workloads it selects changed",
            )
            return
        count = count_dependents(kwargs[RELATIONS], f"{namespace}/{name}")
        if body.status.get("dependents") != count:
            patch.status["dependents"] = count

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
        *, body: kopf.Body, memo: kopf.Memo, namespace: str | None, name: str, **kwargs: Any
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
            indexes=_indexes(kwargs),
        )


async def _resync(
    ctx: Context,
    ci: Mapping[str, Any],
    *,
    reason: str,
    source: dict[str, Any] | _Unset | None = UNSET,
    indexes: Mapping[str, Any] | None = None,
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
        indexes=indexes,
    )
    status = render_status(ctx, previous, generation, out)
    await asyncio.to_thread(ctx.kube.patch_status, PLURAL, name, namespace, status)
    if out.spec_patch:
        await asyncio.to_thread(ctx.kube.patch_spec, PLURAL, name, namespace, out.spec_patch)
    _post(ci, previous, out)
    _record_ready(ctx, namespace, name, out)


async def _discover_item(
    ctx: Context, kind: str, source: dict[str, Any], relations: Mapping[str, Any]
) -> None:
    """Create a ConfigurationItem for an object discovery selects and no item describes yet."""
    settings = ctx.settings
    metadata = source.get("metadata") or {}
    namespace, name = metadata.get("namespace"), str(metadata.get("name"))
    if (
        ctx.discovery is None
        or ctx.kube is None
        or kind not in settings.discovery_kinds
        or not namespace
        or (settings.discovery_namespaces and namespace not in settings.discovery_namespaces)
        or not ctx.discovery.matches(metadata.get("labels"))
    ):
        return
    labels = metadata.get("labels") or {}
    item = name if f"{namespace}/{name}" not in relations else f"{name}-{kind.lower()}"
    spec: dict[str, Any] = {
        "source": {"apiVersion": source.get("apiVersion", ""), "kind": kind, "name": name}
    }
    service = labels.get("app.kubernetes.io/part-of") or labels.get("app.kubernetes.io/name")
    if service:
        spec["service"] = service
    body = {
        "apiVersion": f"{INFO_GROUP_VERSION}",
        "kind": INFO.kind,
        "metadata": {
            "name": item,
            "namespace": namespace,
            "labels": {
                "opsledger.io/discovered": "true",
                "app.kubernetes.io/managed-by": "opsledger",
            },
        },
        "spec": spec,
    }
    created = await asyncio.to_thread(ctx.kube.create_custom, PLURAL, namespace, body)
    if created is not None:
        kopf.event(
            kopf.Body(cast(kopf.RawBody, created)),
            type="Normal",
            reason="Discovered",
            message=f"created for {kind} {namespace}/{name}, selected by discovery",
        )


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
        metadata = body.get("metadata", {})
        key = source_key(kind, metadata.get("namespace"), str(metadata.get("name")))
        index: kopf.Index[Any, Any] = kwargs[INDEX]  # Kopf passes indexes by their id
        claims = sorted(index.get(key, []))
        ctx = context(memo)
        if not claims:
            if event.get("type") != "DELETED":
                await _discover_item(ctx, kind, dict(body), kwargs.get(RELATIONS) or {})
            return
        if event.get("type") is None:
            return  # the initial listing: every CI's resume handler already observes it
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
            indexes=_indexes(kwargs),
        )
