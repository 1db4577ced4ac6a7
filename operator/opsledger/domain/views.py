"""The operator's cross-object views: what each one holds of an object, and the store.

The views answer questions one object's handler asks about others (which item already claims
this source, what depends on this item, which changes run on it, which ServiceLevel serves this
service...). Each is a function from an object (as the API server returns it) to the entries it
contributes, `{key: value}`; a view maps each key to the values of every object that yields it.

They replace Kopf's `@kopf.index`: Kopf holds every handler of every kind until every indexed
object has been indexed, and each object's readiness toggle wakes every waiting worker, so the
start-up cost grows with the square of the number of objects (10,000 items: no handler ran in
5 minutes). These views are filled by one list per kind before the handlers start, then kept
by the handlers' watch events.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opsledger.domain.correlation import IncidentFact
from opsledger.domain.impact import edges
from opsledger.domain.observe import source_key
from opsledger.domain.times import parse_time

# The views' names (the keys of Views; handlers pass Views on as `indexes`).
CHANGE_PLANS = "change_plans"  # namespace → (name, targets, start, end, phase, finished at)
CHANGE_PHASES = "change_phases"  # "namespace/name" → (phase, its Ready message)
CHANGE_CALENDAR = "change_calendar"  # (namespace, service) → (name, summary, start, end, phase)
SERVICE_LEVELS = "change_service_levels"  # (namespace, service) → the ServiceLevel's spec, status
CRITICALITY = "change_item_criticality"  # "namespace/name" → the item's criticality
ITEM_SERVICES = "change_item_services"  # "namespace/name" → the item's service
TARGETS = "incident_targets"  # (namespace, service) → the ServiceLevel's incidentTargets
FACTS = "incident_facts"  # namespace → what correlation needs of each incident there
BY_SOURCE = "ci_by_source"  # source key → (created, namespace, name) of the CIs claiming it
POD_LABELS = "ci_pod_labels"  # namespace → (name, pod labels) of workload CIs
RELATIONS = "ci_relations"  # "namespace/name" → its (type, target) relationships
DEPENDENTS = "ci_dependents"  # "namespace/name" → (dependent, type) of the items that depend on it
ITEMS = "ci_items"  # "namespace/name" → what the item sweeps read of it (item_state)
PROTECTING = "ci_protecting"  # namespace → names of its items with spec.protected

Entries = Mapping[Hashable, Any]
Indexer = Callable[[Mapping[str, Any]], Entries]


def _parts(obj: Mapping[str, Any]) -> tuple[str, str, Mapping[str, Any], Mapping[str, Any]]:
    meta = obj.get("metadata") or {}
    return (
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        obj.get("spec") or {},
        obj.get("status") or {},
    )


def service_level(obj: Mapping[str, Any]) -> Entries:
    namespace, name, spec, status = _parts(obj)
    if not spec.get("service"):
        return {}
    return {
        (namespace, spec["service"]): {"name": name, "spec": dict(spec), "status": dict(status)}
    }


def incident_targets(obj: Mapping[str, Any]) -> Entries:
    namespace, _, spec, _ = _parts(obj)
    if not spec.get("service"):
        return {}
    targets = spec.get("incidentTargets") or []
    return {(namespace, spec["service"]): tuple(dict(t) for t in targets)}


def change_plan(obj: Mapping[str, Any]) -> Entries:
    namespace, name, spec, status = _parts(obj)
    window = status.get("window") or {}
    schedule = spec.get("schedule") or {}
    return {
        namespace: (
            name,
            tuple(spec.get("targets") or ()),
            window.get("start") or schedule.get("notBefore"),
            window.get("end") or schedule.get("notAfter"),
            status.get("phase"),
            (status.get("execution") or {}).get("finishedAt"),
        )
    }


def change_phase(obj: Mapping[str, Any]) -> Entries:
    namespace, name, _, status = _parts(obj)
    if not status.get("phase"):
        return {}
    conditions = status.get("conditions") or ()
    ready: Mapping[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
    return {f"{namespace}/{name}": (str(status["phase"]), ready.get("message"))}


def change_calendar(obj: Mapping[str, Any]) -> Entries:
    namespace, name, spec, status = _parts(obj)
    window = status.get("window") or {}
    if not spec.get("service") or not window.get("start"):
        return {}
    return {
        (namespace, str(spec["service"])): (
            name,
            str(spec.get("summary") or ""),
            window.get("start"),
            window.get("end"),
            status.get("phase"),
        )
    }


def criticality(obj: Mapping[str, Any]) -> Entries:
    namespace, name, spec, _ = _parts(obj)
    return {f"{namespace}/{name}": str(spec.get("criticality") or "medium")}


def item_service(obj: Mapping[str, Any]) -> Entries:
    namespace, name, spec, _ = _parts(obj)
    return {f"{namespace}/{name}": str(spec["service"])} if spec.get("service") else {}


def incident_fact(obj: Mapping[str, Any]) -> Entries:
    namespace, name, spec, status = _parts(obj)
    meta = obj.get("metadata") or {}
    opened = parse_time(status.get("openedAt")) or parse_time(meta.get("creationTimestamp"))
    if opened is None:
        return {}
    return {
        namespace: IncidentFact(
            name=name,
            opened_at=opened,
            items=tuple(spec.get("configurationItems") or ()),
            service=spec.get("service"),
            state=str(spec.get("state") or "New"),
            root_cause=spec.get("rootCause"),
            resolution=spec.get("resolution"),
            resolved_at=parse_time(status.get("resolvedAt")),
            problem=status.get("problem"),
        )
    }


def claimed_source(obj: Mapping[str, Any]) -> Entries:
    namespace, name, spec, _ = _parts(obj)
    source = spec.get("source") or {}
    if not source.get("apiVersion") or not source.get("kind") or not source.get("name"):
        return {}
    key = source_key(source["apiVersion"], source["kind"], namespace, source["name"])
    created = str((obj.get("metadata") or {}).get("creationTimestamp", ""))
    return {key: (created, namespace, name)}


def pod_labels(obj: Mapping[str, Any]) -> Entries:
    namespace, name, _, status = _parts(obj)
    labels = (status.get("observed") or {}).get("podLabels") or {}
    if not labels:
        return {}
    return {namespace: (name, tuple(sorted(labels.items())))}


def _pairs(obj: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    _, _, spec, status = _parts(obj)
    rels = [*(spec.get("relationships") or []), *(status.get("relationships") or [])]
    return tuple(sorted({(r["type"], r["target"]) for r in rels if "type" in r}))


def relations(obj: Mapping[str, Any]) -> Entries:
    namespace, name, _, _ = _parts(obj)
    return {f"{namespace}/{name}": _pairs(obj)}


def depended_on(obj: Mapping[str, Any]) -> Entries:
    """The item's relationships turned round: keyed by each item it depends on, the item (and
    how) that is hit when that one fails (domain/impact.py says which end depends on which)."""
    namespace, name, _, _ = _parts(obj)
    found: dict[str, list[tuple[str, str]]] = {}
    for edge in edges({f"{namespace}/{name}": _pairs(obj)}):
        found.setdefault(edge.dependency, []).append((edge.dependent, edge.type.value))
    return {dependency: tuple(pairs) for dependency, pairs in found.items()}


def protecting(obj: Mapping[str, Any]) -> Entries:
    """A protecting item: the webhook's subresource guard must hear from its namespace."""
    namespace, name, spec, _ = _parts(obj)
    return {namespace: name} if spec.get("protected") else {}


def item_state(obj: Mapping[str, Any]) -> Entries:
    """What the periodic sweeps over every item read: its dependents count, whether its record
    is not in the CMDB, and what tells whether a Service item's exposes edges are stale."""
    namespace, name, spec, status = _parts(obj)
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return {}  # being retired: the delete handler has it
    unsynced = any(
        c.get("type") == "CMDBSynced" and c.get("status") == "False"
        for c in status.get("conditions") or []
    )
    return {
        f"{namespace}/{name}": {
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"lifecycle": spec.get("lifecycle")},
            "status": {
                "class": status.get("class"),
                "observed": {"selector": (status.get("observed") or {}).get("selector")},
                "relationships": status.get("relationships") or [],
                "dependents": status.get("dependents"),
                "unsynced": unsynced,
            },
        }
    }


def dependents_of(view: Mapping[str, Any], item: str) -> set[str]:
    """Every item that depends on `item`, directly or through others, from the DEPENDENTS
    view: it visits only those items, whatever the number of items (cycles are safe)."""
    seen: set[str] = set()
    queue = [item]
    while queue:
        for contributed in view.get(queue.pop(), ()):
            for dependent, _ in contributed:
                if dependent not in seen and dependent != item:
                    seen.add(dependent)
                    queue.append(dependent)
    return seen


# plural → view name → what an object of that kind contributes to the view
INDEXERS: dict[str, dict[str, Indexer]] = {
    "servicelevels": {SERVICE_LEVELS: service_level, TARGETS: incident_targets},
    "changes": {
        CHANGE_PLANS: change_plan,
        CHANGE_PHASES: change_phase,
        CHANGE_CALENDAR: change_calendar,
    },
    "incidents": {FACTS: incident_fact},
    "configurationitems": {
        CRITICALITY: criticality,
        ITEM_SERVICES: item_service,
        BY_SOURCE: claimed_source,
        POD_LABELS: pod_labels,
        RELATIONS: relations,
        DEPENDENTS: depended_on,
        ITEMS: item_state,
        PROTECTING: protecting,
    },
}


ACTIVE_PHASES = ("InProgress", "Verifying")


def changes_in_progress(plans: Mapping[str, Any], namespace: str, item: str) -> list[str]:
    """Names of the changes in progress in `namespace` that target `item` (from CHANGE_PLANS)."""
    entries = plans.get(namespace, ())
    return sorted(str(e[0]) for e in entries if e[4] in ACTIVE_PHASES and item in e[1])


class View(Mapping[Any, tuple[Any, ...]]):
    """key → the values every object yielding that key contributed (in no particular order)."""

    def __init__(self) -> None:
        self._by_key: dict[Hashable, dict[str, Any]] = {}
        self._keys_of: dict[str, tuple[Hashable, ...]] = {}

    def put(self, uid: str, entries: Entries) -> None:
        self.drop(uid)
        for key, value in entries.items():
            self._by_key.setdefault(key, {})[uid] = value
        if entries:
            self._keys_of[uid] = tuple(entries)

    def drop(self, uid: str) -> None:
        for key in self._keys_of.pop(uid, ()):
            bucket = self._by_key.get(key)
            if bucket is not None:
                bucket.pop(uid, None)
                if not bucket:
                    del self._by_key[key]

    def __getitem__(self, key: Any) -> tuple[Any, ...]:
        return tuple(self._by_key[key].values())

    def singles(self) -> list[tuple[Any, Any]]:
        """(key, value) for views where each key has one object (one item per "ns/name"),
        read straight from the store."""
        return [(k, next(iter(b.values()))) for k, b in self._by_key.items() if b]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)


@dataclass
class Views(Mapping[str, View]):
    """All the views, kept from objects as they are listed and as their events arrive."""

    indexers: Mapping[str, Mapping[str, Indexer]] = field(default_factory=lambda: INDEXERS)
    views: dict[str, View] = field(default_factory=dict)
    # plural → uid → the moment (a counter) it was last observed, for pruning after a list
    seen: dict[str, dict[str, int]] = field(default_factory=dict)
    clock: int = 0

    def __post_init__(self) -> None:
        for names in self.indexers.values():
            for name in names:
                self.views.setdefault(name, View())

    def observe(self, plural: str, obj: Mapping[str, Any]) -> None:
        """Take `obj` as it is now into every view of its kind."""
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        if not uid or plural not in self.indexers:
            return
        self.clock += 1
        self.seen.setdefault(plural, {})[uid] = self.clock
        for name, indexer in self.indexers[plural].items():
            self.views[name].put(uid, indexer(obj))

    def forget(self, plural: str, obj: Mapping[str, Any]) -> None:
        """`obj` is gone: its entries leave every view."""
        self._drop(plural, str((obj.get("metadata") or {}).get("uid") or ""))

    def mark(self) -> int:
        """A moment to prune against: take it before a list is read."""
        return self.clock

    def replace(self, plural: str, objects: Iterable[Mapping[str, Any]], since: int) -> int:
        """Take a full list of `plural` read after `since`: its objects are observed, and those
        not in it and not observed since are dropped (deleted while no event said so). Returns
        how many were dropped."""
        listed = set()
        seen = self.seen.setdefault(plural, {})
        for obj in objects:
            uid = str((obj.get("metadata") or {}).get("uid") or "")
            listed.add(uid)
            if seen.get(uid, 0) <= since:  # an event since the list began is newer: keep it
                self.observe(plural, obj)
        stale = [uid for uid, at in seen.items() if uid not in listed and at <= since]
        for uid in stale:
            self._drop(plural, uid)
        return len(stale)

    def _drop(self, plural: str, uid: str) -> None:
        self.seen.get(plural, {}).pop(uid, None)
        for name in self.indexers.get(plural, {}):
            self.views[name].drop(uid)

    def __getitem__(self, name: str) -> View:
        return self.views[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.views)

    def __len__(self) -> int:
        return len(self.views)
