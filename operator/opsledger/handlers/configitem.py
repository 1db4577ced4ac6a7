"""ConfigurationItem handlers: observe the source, commit the record, report drift and sync.

A CI is reconciled when it changes, when the operator starts, when its source object changes
(watch events on the source kinds), and on a timer while its record is not yet in the remote.
Every path renders the record from the cluster as it is now, so nothing pending lives only in
memory: a restart or an unreachable remote delays a record, never loses it. The paths take one
lock per item (kept in the Context), so two of them never render and write one record at once.

When a source object is deleted, the item is retired and marked as retired by the operator (an
annotation); when the source comes back, a so marked item gets its earlier lifecycle back. A
lifecycle a person set to retired stays retired.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf
from kubernetes import client

from opsledger.adapters.gitcmdb import CMDBError, RemoteUnavailableError
from opsledger.adapters.kube import Kube
from opsledger.domain.classes import effective_class
from opsledger.domain.conditions import READY, parse_conditions, set_condition
from opsledger.domain.impact import ImpactGraph
from opsledger.domain.observe import (
    CLUSTER_SCOPED_KINDS,
    WORKLOAD_KINDS,
    api_group,
    infrastructure_edges,
    observe,
    owner_relationships,
    recorded,
    selects,
    source_key,
)
from opsledger.domain.records import ci_record, record_path, to_yaml
from opsledger.handlers.common import (
    CHANGE_PLANS,
    changes_in_progress,
    context,
    on_spec,
    validated_spec,
)
from opsledger.models import CONFIGURATION_ITEM
from opsledger.models.common import API_GROUP, API_VERSION, ConditionStatus, ObjectReference
from opsledger.models.configitem import (
    ConfigurationItemSpec,
    Lifecycle,
    Relationship,
    RelationshipType,
)
from opsledger.models.settings import Settings
from opsledger.services.context import Context

INFO = CONFIGURATION_ITEM
INFO_GROUP_VERSION = "opsledger.io/v1alpha1"
PLURAL = INFO.plural
CMDB_SYNCED = "CMDBSynced"
DRIFTED = "Drifted"
INDEX = "ci_by_source"  # source key → (created, namespace, name) of the CIs claiming it
POD_LABELS = "ci_pod_labels"  # namespace → (name, pod labels) of workload CIs
RELATIONS = "ci_relations"  # "namespace/name" → its (type, target) relationships
# Set on an item the operator retired because its source was deleted (value: operator), with
# the lifecycle it had before; both go when the source comes back and that lifecycle returns.
RETIRED_BY = "opsledger.io/retired-by"
RETIRED_BY_OPERATOR = "operator"
RETIRED_FROM = "opsledger.io/retired-from"

# (group, version, plural, kind) of the objects a CI can follow live.
SOURCE_KINDS = (
    ("apps", "v1", "deployments", "Deployment"),
    ("apps", "v1", "statefulsets", "StatefulSet"),
    ("apps", "v1", "daemonsets", "DaemonSet"),
    ("", "v1", "services", "Service"),
    ("", "v1", "nodes", "Node"),
    ("", "v1", "namespaces", "Namespace"),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ("", "v1", "persistentvolumes", "PersistentVolume"),
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
    annotations: dict[str, str | None] = field(default_factory=dict)  # None removes one


async def sync_item(
    ctx: Context,
    *,
    namespace: str,
    name: str,
    spec: ConfigurationItemSpec,
    status: Mapping[str, Any],
    reason: str,
    annotations: Mapping[str, str] | None = None,
    source: dict[str, Any] | _Unset | None = UNSET,
    deleted: bool = False,
    indexes: Mapping[str, Any] | None = None,
) -> Outcome:
    """Observe the source (unless given), render the record, commit it, and say how it went.

    Callers hold the item's lock (`item_lock`)."""
    out = Outcome()
    ref = spec.source
    live: dict[str, Any] = {}
    discovered: list[Relationship] = []
    retired_reason = None
    if deleted:
        retired_reason = "the ConfigurationItem was deleted from the cluster"
        live, discovered = _last_seen(status)
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
            live, discovered = _last_seen(status)  # the last thing we saw of it
            if spec.lifecycle != Lifecycle.RETIRED:
                _retire(out, spec, retired_reason)
        else:
            spec = _restore(out, spec, ref, annotations or {})
            live = observe(source, ctx.redactor)
            nodes = await _pod_nodes(ctx, ref.kind, source, namespace)
            discovered = _discover(
                ref,
                source,
                live,
                namespace=namespace,
                name=name,
                indexes=indexes or {},
                nodes=nodes,
            )
    record = ci_record(
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
    await _commit(
        ctx,
        out,
        namespace=namespace,
        name=name,
        text=to_yaml(record),
        reason=reason,
        availability=status.get("availability"),
    )
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


def _last_seen(status: Mapping[str, Any]) -> tuple[dict[str, Any], list[Relationship]]:
    """What status last showed of a source that is gone: its observation and relationships,
    kept as they were (the record of a retired item says what it was when it went)."""
    edges = []
    for wire in status.get("relationships") or []:
        try:
            edges.append(Relationship.model_validate(wire))
        except ValueError:
            continue
    return dict(status.get("observed") or {}), edges


def _retire(out: Outcome, spec: ConfigurationItemSpec, reason: str) -> None:
    """Retire an item whose source is gone, marked so that the source's return undoes it."""
    before = Lifecycle(spec.lifecycle)
    out.spec_patch = {"lifecycle": Lifecycle.RETIRED.value}
    out.annotations = {RETIRED_BY: RETIRED_BY_OPERATOR, RETIRED_FROM: before.value}
    out.events.append(
        (
            "Warning",
            "SourceDeleted",
            f"{reason}; the item is retired in the CMDB (lifecycle {before.value} again if "
            "the source comes back)",
        )
    )


def _restore(
    out: Outcome,
    spec: ConfigurationItemSpec,
    ref: ObjectReference,
    annotations: Mapping[str, str],
) -> ConfigurationItemSpec:
    """The spec to record for an item whose source exists: an item the operator retired gets
    its earlier lifecycle back; one a person retired stays retired."""
    marked = RETIRED_BY in annotations or RETIRED_FROM in annotations
    if spec.lifecycle != Lifecycle.RETIRED:
        if marked:  # a person brought it back already; the marks are stale
            out.annotations = {RETIRED_BY: None, RETIRED_FROM: None}
        return spec
    if annotations.get(RETIRED_BY) != RETIRED_BY_OPERATOR:
        return spec
    try:
        before = Lifecycle(annotations.get(RETIRED_FROM) or Lifecycle.ACTIVE)
    except ValueError:
        before = Lifecycle.ACTIVE
    if before == Lifecycle.RETIRED:
        before = Lifecycle.ACTIVE
    out.spec_patch = {"lifecycle": before.value}
    out.annotations = {RETIRED_BY: None, RETIRED_FROM: None}
    out.events.append(
        (
            "Normal",
            "SourceRestored",
            f"source {ref.kind} {ref.name} exists again; the item is {before.value} again",
        )
    )
    return spec.model_copy(update={"lifecycle": before})


async def _commit(
    ctx: Context,
    out: Outcome,
    *,
    namespace: str,
    name: str,
    text: str,
    reason: str,
    availability: Any = None,
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
        why = "RemoteUnavailable" if isinstance(exc, RemoteUnavailableError) else "WriteFailed"
        message = (
            f"{path} is not written yet; will retry every "
            f"{ctx.settings.cmdb_retry_interval:g}s: {exc}"
        )
        out.conditions.append((CMDB_SYNCED, ConditionStatus.FALSE, why, message))
        return
    out.status["cmdb"] = {
        "path": path,
        "commit": commit.sha,
        "syncedAt": ctx.clock().isoformat().replace("+00:00", "Z"),
        "availability": availability or None,
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
    """Events for what happened; condition-driven ones only when the condition flips (so an
    unreachable remote is reported once, not on every retry)."""
    for type_, reason, message in out.events:
        kopf.event(body, type=type_, reason=reason, message=message)
    for type_, status, reason, message in out.conditions:
        if type_ not in (CMDB_SYNCED, DRIFTED) or not _changed(previous, type_, status):
            continue
        if type_ == CMDB_SYNCED and status == ConditionStatus.FALSE:
            kopf.event(body, type="Warning", reason="CMDBUnavailable", message=message)
            continue
        kind = "Warning" if (type_ == DRIFTED and status == ConditionStatus.TRUE) else "Normal"
        kopf.event(body, type=kind, reason=reason, message=message)


def item_lock(ctx: Context, namespace: str, name: str) -> asyncio.Lock:
    """The lock held while one item is observed, rendered and written (made on first use)."""
    key = f"{namespace}/{name}"
    lock = ctx.item_locks.get(key)
    if lock is None:
        lock = ctx.item_locks[key] = asyncio.Lock()
    return lock


def _amend(kube: Kube, namespace: str, name: str, out: Outcome) -> None:
    """Write an outcome's spec and annotation changes to the item in one merge patch (for
    work outside the item's own handlers, which use Kopf's patch)."""
    body: dict[str, Any] = {}
    if out.spec_patch:
        body["spec"] = out.spec_patch
    if out.annotations:
        body["metadata"] = {"annotations": out.annotations}
    if body:
        client.CustomObjectsApi(kube.api).patch_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL, name, body
        )


def _duplicate_of(
    index: kopf.Index[Any, Any], spec: ConfigurationItemSpec, namespace: str, name: str
) -> str | None:
    """The elder CI that already claims this item's source, if any."""
    if spec.source is None:
        return None
    key = source_key(spec.source.api_version, spec.source.kind, namespace, spec.source.name)
    claims = sorted(index.get(key, []))
    if len(claims) > 1 and claims[0][1:] != (namespace, name):
        return f"{claims[0][1]}/{claims[0][2]}"
    return None


async def _pod_nodes(ctx: Context, kind: str, source: dict[str, Any], namespace: str) -> list[str]:
    """The nodes a workload's pods run on (none for other kinds)."""
    selector = ((source.get("spec") or {}).get("selector") or {}).get("matchLabels")
    if kind not in WORKLOAD_KINDS or ctx.kube is None or not selector:
        return []
    return await asyncio.to_thread(ctx.kube.pod_nodes, namespace, selector)


def _discover(
    ref: ObjectReference,
    source: dict[str, Any],
    live: Mapping[str, Any],
    *,
    namespace: str,
    name: str,
    indexes: Mapping[str, Any],
    nodes: list[str] | None = None,
) -> list[Relationship]:
    """Relationships the cluster shows: owners (partOf), a Service's workloads (exposes), and
    the infrastructure used — nodes of a workload's pods (runsOn), claims and volumes
    (storesIn), an Ingress's Services (exposes) — wherever an item follows them."""
    found = []
    by_source = indexes.get(INDEX) or {}
    for type_, kind, target in infrastructure_edges(ref.kind, live, nodes or []):
        claims = sorted(by_source.get(source_key("v1", kind, namespace, target), []))
        if claims:
            _, target_ns, item = claims[0]
            found.append(
                Relationship(type=type_, target=qualify_target(target_ns, item, namespace))
            )
    for type_, owner_api_version, owner_kind, owner_name in owner_relationships(source):
        key = source_key(owner_api_version, owner_kind, namespace, owner_name)
        claims = sorted(by_source.get(key, []))
        if claims:
            _, owner_ns, owner = claims[0]
            found.append(
                Relationship(type=type_, target=qualify_target(owner_ns, owner, namespace))
            )
    if ref.kind == "Service" and api_group(ref.api_version) == "":
        # the selector as observed: redacted like the pod labels it is compared with
        selector = live.get("selector") or {}
        workloads = (indexes.get(POD_LABELS) or {}).get(namespace, [])
        for workload, labels in sorted(workloads):
            if workload != name and selects(selector, dict(labels)):
                found.append(Relationship(type=RelationshipType.EXPOSES, target=workload))
    return found


def _exposes_stale(body: Mapping[str, Any], pod_labels: Mapping[str, Any], namespace: str) -> bool:
    """Whether a Service item's recorded exposes edges differ from what its selector matches.

    Never for a retired item: its Service is gone (or no longer of interest), and its edges stay
    as they were when it retired."""
    status = body.get("status") or {}
    if status.get("class") != "Service":
        return False
    if (body.get("spec") or {}).get("lifecycle") == Lifecycle.RETIRED:
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
            async with item_lock(ctx, namespace, name):
                out = await sync_item(
                    ctx,
                    namespace=namespace,
                    name=name,
                    spec=spec,
                    status=previous,
                    annotations=dict(body.metadata.annotations),
                    reason=f"ConfigurationItem {namespace}/{name} generation {generation}",
                    indexes=indexes,
                )
        patch.status.update(render_status(ctx, previous, generation, out))
        if out.spec_patch:
            patch.spec.update(out.spec_patch)
        for key, value in out.annotations.items():
            patch.metadata.annotations[key] = value
        _post(body, previous, out)
        _record_ready(ctx, namespace, name, out)

    @kopf.on.delete("opsledger.io", "v1alpha1", PLURAL, registry=registry, id="retire")
    async def retire(
        *, body: kopf.Body, memo: kopf.Memo, namespace: str | None, name: str, **_: Any
    ) -> None:
        """A deleted item stays in the CMDB as retired; deletion waits until that is written.

        An item whose record was never written (no status.cmdb) leaves nothing to retire."""
        namespace = namespace or ""
        ctx = context(memo)
        try:
            spec = ConfigurationItemSpec.model_validate(dict(body.spec))
        except ValueError:
            spec = None  # an invalid item never had a record
        if spec is not None:
            async with item_lock(ctx, namespace, name):
                status = await _latest_status(ctx, body, namespace, name)
                if status.get("cmdb"):
                    out = await sync_item(
                        ctx,
                        namespace=namespace,
                        name=name,
                        spec=spec,
                        status=status,
                        deleted=True,
                        reason=f"ConfigurationItem {namespace}/{name} deleted",
                    )
                    unsynced = next(
                        (
                            message
                            for type_, value, _, message in out.conditions
                            if type_ == CMDB_SYNCED and value == ConditionStatus.FALSE
                        ),
                        None,
                    )
                    if unsynced is not None:
                        raise kopf.TemporaryError(
                            f"the retired record is not in the CMDB yet: {unsynced}",
                            delay=settings.cmdb_retry_interval,
                        )
        ctx.item_locks.pop(f"{namespace}/{name}", None)
        ctx.metrics.forget(INFO.kind, namespace, name)

    for group, version, plural, kind in SOURCE_KINDS:
        _register_source_watch(registry, group, version, plural, kind)


def _register_indexes(registry: kopf.OperatorRegistry) -> None:
    """The indexes the CI handlers look items up in."""

    @kopf.index("opsledger.io", "v1alpha1", PLURAL, registry=registry, id=INDEX)
    def ci_by_source(
        *, namespace: str | None, name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any
    ) -> dict[tuple[str, str, str, str], tuple[str, str, str]]:
        # {} rather than None: Kopf keeps an object's old entries when its function returns None
        source = spec.get("source") or {}
        if not source.get("apiVersion") or not source.get("kind") or not source.get("name"):
            return {}
        key = source_key(source["apiVersion"], source["kind"], namespace, source["name"])
        return {key: (str(meta.get("creationTimestamp", "")), namespace or "", name)}

    @kopf.index("opsledger.io", "v1alpha1", PLURAL, registry=registry, id=POD_LABELS)
    def ci_pod_labels(
        *, namespace: str | None, name: str, status: kopf.Status, **_: Any
    ) -> dict[str, tuple[str, tuple[tuple[str, str], ...]]]:
        labels = ((status.get("observed") or {}).get("podLabels")) or {}
        if not labels:
            return {}  # not None, which would keep the labels the item had before
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
                namespace or "",
                name,
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
            namespace or "",
            name,
            reason=f"ConfigurationItem {namespace}/{name}: retry after the CMDB write failed",
            indexes=_indexes(kwargs),
        )


async def _resync(
    ctx: Context,
    namespace: str,
    name: str,
    *,
    reason: str,
    source: dict[str, Any] | _Unset | None = UNSET,
    indexes: Mapping[str, Any] | None = None,
) -> None:
    """Reconcile a CI from outside its own handlers (a source event, a timer) via the API.

    The item is read under its lock, so it is the one the last sync of it left behind."""
    if ctx.kube is None:
        return
    async with item_lock(ctx, namespace, name):
        ci = await asyncio.to_thread(ctx.kube.get_custom, PLURAL, name, namespace)
        metadata = (ci or {}).get("metadata") or {}
        if ci is None or metadata.get("deletionTimestamp"):
            return  # gone, or being deleted: the retire handler records it
        try:
            spec = ConfigurationItemSpec.model_validate(dict(ci.get("spec") or {}))
        except ValueError:
            return  # the item's own handler reports the invalid spec
        previous = dict(ci.get("status") or {})
        generation = metadata.get("generation")
        out = await sync_item(
            ctx,
            namespace=namespace,
            name=name,
            spec=spec,
            status=previous,
            annotations=metadata.get("annotations") or {},
            reason=reason,
            source=source,
            indexes=indexes,
        )
        status = render_status(ctx, previous, generation, out)
        await asyncio.to_thread(ctx.kube.patch_status, PLURAL, name, namespace, status)
        await asyncio.to_thread(_amend, ctx.kube, namespace, name, out)
    _post(ci, previous, out)
    _record_ready(ctx, namespace, name, out)


async def rerecord(ctx: Context, namespace: str, name: str, *, reason: str) -> None:
    """Write the item's record again from what its status shows, without observing the source
    (status holds the last observation): for figures measured elsewhere, such as availability.

    An item never recorded yet is left to its own reconciliation, which includes them."""
    if ctx.kube is None or ctx.cmdb is None:
        return
    async with item_lock(ctx, namespace, name):
        ci = await asyncio.to_thread(ctx.kube.get_custom, PLURAL, name, namespace)
        metadata = (ci or {}).get("metadata") or {}
        if ci is None or metadata.get("deletionTimestamp"):
            return
        try:
            spec = ConfigurationItemSpec.model_validate(dict(ci.get("spec") or {}))
        except ValueError:
            return
        previous = dict(ci.get("status") or {})
        if not previous.get("cmdb") or spec.lifecycle == Lifecycle.RETIRED:
            return
        live, discovered = _last_seen(previous)
        record = ci_record(
            cluster=ctx.settings.cluster,
            namespace=namespace,
            name=name,
            spec=spec,
            observed=recorded(live),
            discovered=discovered,
            redactor=ctx.redactor,
            availability=previous.get("availability"),
        )
        out = Outcome()
        await _commit(
            ctx,
            out,
            namespace=namespace,
            name=name,
            text=to_yaml(record),
            reason=reason,
            availability=previous.get("availability"),
        )
        status = render_status(ctx, previous, metadata.get("generation"), out)
        await asyncio.to_thread(ctx.kube.patch_status, PLURAL, name, namespace, status)


async def _latest_status(
    ctx: Context, body: kopf.Body, namespace: str, name: str
) -> dict[str, Any]:
    """The item's status as the API server has it now (a sync may have written it since Kopf
    read `body`); `body`'s when there is no client or the item is gone."""
    if ctx.kube is not None:
        ci = await asyncio.to_thread(ctx.kube.get_custom, PLURAL, name, namespace)
        if ci is not None:
            return dict(ci.get("status") or {})
    return dict(body.status)


async def _discover_item(
    ctx: Context, kind: str, source: dict[str, Any], relations: Mapping[str, Any]
) -> None:
    """Create a ConfigurationItem for an object discovery selects and no item describes yet.

    Items for cluster-scoped objects (Nodes, Namespaces, PersistentVolumes) live in
    OPSLEDGER_DISCOVERY_INFRA_NAMESPACE, named <kind>-<name>."""
    settings = ctx.settings
    metadata = source.get("metadata") or {}
    namespace, name = metadata.get("namespace"), str(metadata.get("name"))
    cluster_scoped = kind in CLUSTER_SCOPED_KINDS
    if cluster_scoped:
        namespace = settings.discovery_infra_namespace
    if (
        ctx.discovery is None
        or ctx.kube is None
        or kind not in settings.discovery_kinds
        or not namespace
        or (
            not cluster_scoped
            and settings.discovery_namespaces
            and namespace not in settings.discovery_namespaces
        )
        or not ctx.discovery.matches(metadata.get("labels"))
    ):
        return
    labels = metadata.get("labels") or {}
    if cluster_scoped:
        item = f"{kind.lower()}-{name}"[:253]
    else:
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
        deleted = event.get("type") == "DELETED"
        what = "deleted" if deleted else f"changed (generation {metadata.get('generation')})"
        reason = f"ConfigurationItem {namespace}/{name}: {kind} {metadata.get('name')} {what}"
        during = changes_in_progress(kwargs.get(CHANGE_PLANS), namespace, name)
        if during:
            reason += " during " + ", ".join(f"Change {namespace}/{c}" for c in during)
        await _resync(
            ctx,
            namespace,
            name,
            reason=reason,
            source=None if deleted else dict(body),
            indexes=_indexes(kwargs),
        )
