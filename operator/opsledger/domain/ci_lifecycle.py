"""The ConfigurationItem lifecycle rules: retire and restore with the source, duplicate claims,
discovery's selection and naming, and the relationships the cluster shows.

Plain functions over plain values; the use cases in `services/configitem.py` and
`services/discovery.py` read the cluster and the indexes and apply what these decide.

When a source object is deleted, the item is retired and marked as retired by the operator (two
annotations); when the source comes back, a so marked item gets its earlier lifecycle back. A
lifecycle a person set to retired stays retired.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opsledger.domain.conditions import READY
from opsledger.domain.observe import (
    CLUSTER_SCOPED_KINDS,
    api_group,
    infrastructure_edges,
    owner_relationships,
    selects,
    source_key,
)
from opsledger.domain.outcome import ConditionUpdate, Event
from opsledger.domain.selectors import Selector
from opsledger.domain.views import dependents_of
from opsledger.models.common import ConditionStatus, ObjectReference
from opsledger.models.configitem import (
    ConfigurationItemSpec,
    Lifecycle,
    Relationship,
    RelationshipType,
)

DRIFTED = "Drifted"
# Set on an item the operator retired because its source was deleted (value: operator), with
# the lifecycle it had before; both go when the source comes back and that lifecycle returns.
RETIRED_BY = "opsledger.io/retired-by"
RETIRED_BY_OPERATOR = "operator"
RETIRED_FROM = "opsledger.io/retired-from"
DISCOVERED_LABELS = {"opsledger.io/discovered": "true", "app.kubernetes.io/managed-by": "opsledger"}

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

Claim = tuple[str, str, str]  # (created, namespace, name) of an item claiming a source


@dataclass
class Amendment:
    """Changes to the item itself: a spec patch, annotations (None removes one), Events."""

    spec_patch: dict[str, Any] | None = None
    annotations: dict[str, str | None] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


def retire(lifecycle: Lifecycle | str, reason: str) -> Amendment:
    """Retire an item whose source is gone, marked so that the source's return undoes it."""
    before = Lifecycle(lifecycle)
    return Amendment(
        spec_patch={"lifecycle": Lifecycle.RETIRED.value},
        annotations={RETIRED_BY: RETIRED_BY_OPERATOR, RETIRED_FROM: before.value},
        events=[
            Event(
                "Warning",
                "SourceDeleted",
                f"{reason}; the item is retired in the CMDB (lifecycle {before.value} again if "
                "the source comes back)",
            )
        ],
    )


def restore(
    spec: ConfigurationItemSpec, ref: ObjectReference, annotations: Mapping[str, str]
) -> tuple[ConfigurationItemSpec, Amendment]:
    """The spec to record for an item whose source exists, and the changes to the item: one
    the operator retired gets its earlier lifecycle back; one a person retired stays retired."""
    marked = RETIRED_BY in annotations or RETIRED_FROM in annotations
    if spec.lifecycle != Lifecycle.RETIRED:
        if marked:  # a person brought it back already; the marks are stale
            return spec, Amendment(annotations={RETIRED_BY: None, RETIRED_FROM: None})
        return spec, Amendment()
    if annotations.get(RETIRED_BY) != RETIRED_BY_OPERATOR:
        return spec, Amendment()
    try:
        before = Lifecycle(annotations.get(RETIRED_FROM) or Lifecycle.ACTIVE)
    except ValueError:
        before = Lifecycle.ACTIVE
    if before == Lifecycle.RETIRED:
        before = Lifecycle.ACTIVE
    amendment = Amendment(
        spec_patch={"lifecycle": before.value},
        annotations={RETIRED_BY: None, RETIRED_FROM: None},
        events=[
            Event(
                "Normal",
                "SourceRestored",
                f"source {ref.kind} {ref.name} exists again; the item is {before.value} again",
            )
        ],
    )
    return spec.model_copy(update={"lifecycle": before}), amendment


def last_seen(status: Mapping[str, Any]) -> tuple[dict[str, Any], list[Relationship]]:
    """What status last showed of a source that is gone: its observation and relationships,
    kept as they were (the record of a retired item says what it was when it went)."""
    edges = []
    for wire in status.get("relationships") or []:
        try:
            edges.append(Relationship.model_validate(wire))
        except ValueError:
            continue
    return dict(status.get("observed") or {}), edges


def elder_claim(index: Mapping[Any, Iterable[Claim]], key: Any) -> Claim | None:
    """The claim that owns a source: the eldest item's (ties by namespace and name)."""
    claims = sorted(index.get(key, []))
    return claims[0] if claims else None


def duplicate_of(
    index: Mapping[Any, Iterable[Claim]], spec: ConfigurationItemSpec, namespace: str, name: str
) -> str | None:
    """The elder CI ("namespace/name") that already claims this item's source, if any."""
    if spec.source is None:
        return None
    key = source_key(spec.source.api_version, spec.source.kind, namespace, spec.source.name)
    claims = sorted(index.get(key, []))
    if len(claims) > 1 and claims[0][1:] != (namespace, name):
        return f"{claims[0][1]}/{claims[0][2]}"
    return None


def duplicate_condition(ref: ObjectReference, elder: str) -> ConditionUpdate:
    """Ready=False for an item whose source an elder item already describes."""
    return ConditionUpdate(
        READY,
        ConditionStatus.FALSE,
        "DuplicateSource",
        f"{ref.kind} {ref.name} is already described by ConfigurationItem {elder}; delete this "
        "item or point spec.source at another object",
    )


def drift_condition(drift: list[str]) -> ConditionUpdate:
    """Drifted: True when declared attributes differ from the source's."""
    if drift:
        return ConditionUpdate(
            DRIFTED,
            ConditionStatus.TRUE,
            "AttributesDiffer",
            "declared attributes differ from the source: " + ", ".join(drift),
        )
    return ConditionUpdate(
        DRIFTED, ConditionStatus.FALSE, "InSync", "declared attributes match the source"
    )


def ready_condition(retired_reason: str | None) -> ConditionUpdate:
    """Ready once the item is recorded: Retired (and why) or Recorded."""
    if retired_reason:
        return ConditionUpdate(READY, ConditionStatus.TRUE, "Retired", retired_reason)
    return ConditionUpdate(
        READY, ConditionStatus.TRUE, "Recorded", "the item is observed and recorded"
    )


def source_event_reason(
    namespace: str, name: str, *, kind: str, source_name: str, what: str, during: Iterable[str]
) -> str:
    """The commit message for a record written because its source changed (`what`), naming
    the changes in progress on the item."""
    reason = f"ConfigurationItem {namespace}/{name}: {kind} {source_name} {what}"
    changes = list(during)
    if changes:
        reason += " during " + ", ".join(f"Change {namespace}/{c}" for c in changes)
    return reason


def discovery_namespace(
    kind: str,
    metadata: Mapping[str, Any],
    *,
    selector: Selector | None,
    kinds: Iterable[str],
    namespaces: Iterable[str],
    infra_namespace: str,
) -> str | None:
    """The namespace of the item discovery makes for an object, None when it makes none.

    Discovery (a selector) takes the listed kinds in the listed namespaces (all when none are
    listed) whose labels it matches; items for cluster-scoped objects (Nodes, Namespaces,
    PersistentVolumes) live in the infra namespace, whatever the listed namespaces."""
    namespace = metadata.get("namespace")
    cluster_scoped = kind in CLUSTER_SCOPED_KINDS
    if cluster_scoped:
        namespace = infra_namespace
    allowed = list(namespaces)
    if (
        selector is None
        or kind not in set(kinds)
        or not namespace
        or (not cluster_scoped and allowed and namespace not in allowed)
        or not selector.matches(metadata.get("labels"))
    ):
        return None
    return str(namespace)


def discovered_name(kind: str, name: str, namespace: str, relations: Mapping[str, Any]) -> str:
    """The name of a discovered item: <kind>-<name> for a cluster-scoped object, else the
    object's name, or <name>-<kind> when an item of that name exists already."""
    if kind in CLUSTER_SCOPED_KINDS:
        return f"{kind.lower()}-{name}"[:253]
    return name if f"{namespace}/{name}" not in relations else f"{name}-{kind.lower()}"


def discovered_item(
    kind: str,
    source: Mapping[str, Any],
    *,
    namespace: str,
    relations: Mapping[str, Any],
    group_version: str,
    item_kind: str,
) -> dict[str, Any]:
    """The ConfigurationItem discovery creates for `source` (in `namespace`): it follows the
    source, and its service is the object's app.kubernetes.io/part-of (or name) label."""
    metadata = source.get("metadata") or {}
    name = str(metadata.get("name"))
    labels = metadata.get("labels") or {}
    spec: dict[str, Any] = {
        "source": {"apiVersion": source.get("apiVersion", ""), "kind": kind, "name": name}
    }
    service = labels.get("app.kubernetes.io/part-of") or labels.get("app.kubernetes.io/name")
    if service:
        spec["service"] = service
    return {
        "apiVersion": group_version,
        "kind": item_kind,
        "metadata": {
            "name": discovered_name(kind, name, namespace, relations),
            "namespace": namespace,
            "labels": dict(DISCOVERED_LABELS),
        },
        "spec": spec,
    }


def discover(
    ref: ObjectReference,
    source: Mapping[str, Any],
    live: Mapping[str, Any],
    *,
    namespace: str,
    name: str,
    by_source: Mapping[Any, Iterable[Claim]],
    pod_labels: Mapping[str, Iterable[tuple[str, Any]]],
    nodes: list[str] | None = None,
) -> list[Relationship]:
    """Relationships the cluster shows: owners (partOf), a Service's workloads (exposes), and
    the infrastructure used — nodes of a workload's pods (runsOn), claims and volumes
    (storesIn), an Ingress's Services (exposes) — wherever an item follows them."""
    found = []
    for type_, kind, target in infrastructure_edges(ref.kind, live, nodes or []):
        claim = elder_claim(by_source, source_key("v1", kind, namespace, target))
        if claim:
            _, target_ns, item = claim
            found.append(
                Relationship(type=type_, target=qualify_target(target_ns, item, namespace))
            )
    for type_, owner_api_version, owner_kind, owner_name in owner_relationships(dict(source)):
        claim = elder_claim(
            by_source, source_key(owner_api_version, owner_kind, namespace, owner_name)
        )
        if claim:
            _, owner_ns, owner = claim
            found.append(
                Relationship(type=type_, target=qualify_target(owner_ns, owner, namespace))
            )
    if ref.kind == "Service" and api_group(ref.api_version) == "":
        # the selector as observed: redacted like the pod labels it is compared with
        selector = live.get("selector") or {}
        for workload in _selected(selector, pod_labels.get(namespace, []), name):
            found.append(Relationship(type=RelationshipType.EXPOSES, target=workload))
    return found


def _selected(
    selector: dict[str, str], workloads: Iterable[tuple[str, Any]], name: object
) -> list[str]:
    """The workload items (other than `name`) whose pod labels `selector` matches, sorted."""
    return [w for w, labels in sorted(workloads) if w != name and selects(selector, dict(labels))]


def exposes_stale(body: Mapping[str, Any], pod_labels: Mapping[str, Any], namespace: str) -> bool:
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
    matched = _selected(selector, pod_labels.get(namespace, []), name)
    recorded_edges = sorted(
        r["target"]
        for r in status.get("relationships") or []
        if r.get("type") == RelationshipType.EXPOSES
    )
    return matched != recorded_edges


def qualify_target(target_namespace: str, target: str, namespace: str) -> str:
    """A relationship target as seen from `namespace`: bare when local, else namespace/name."""
    return target if target_namespace == namespace else f"{target_namespace}/{target}"


def count_dependents(view: Mapping[str, Any], item: str) -> int:
    """How many items depend on `item`, directly or not, from the DEPENDENTS view."""
    return len(dependents_of(view, item))
