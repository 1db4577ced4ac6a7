"""Impact analysis over the configuration items' relationships: what depends on X, transitively.

Relationships are written from the item that has them (`web dependsOn orders-db`); impact flows
the other way (an outage of orders-db hits web). Each relationship type says which end depends on
which:

| A <type> B     | so        |
| -------------- | --------- |
| A dependsOn B  | A depends on B |
| A runsOn B     | A depends on B |
| A connectsTo B | A depends on B |
| A storesIn B   | A depends on B |
| A exposes B    | A depends on B (a Service is down when its workload is) |
| A partOf B     | B depends on A (the whole suffers when a part fails) |
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from opsledger.models.configitem import RelationshipType

# an item's id is "namespace/name"
ItemId = str


@dataclass(frozen=True)
class Edge:
    """`dependent` is affected when `dependency` fails, because of `type`."""

    dependent: ItemId
    dependency: ItemId
    type: RelationshipType


@dataclass(frozen=True)
class ImpactNode:
    item: ItemId
    via: RelationshipType | None
    children: tuple[ImpactNode, ...] = field(default_factory=tuple)


def qualify(target: str, namespace: str) -> ItemId:
    """A relationship target as an item id: bare names are in the item's own namespace."""
    return target if "/" in target else f"{namespace}/{target}"


def edges(relationships: Mapping[ItemId, Iterable[tuple[str, str]]]) -> list[Edge]:
    """Dependency edges from each item's (type, target) relationships."""
    result = []
    for item, rels in relationships.items():
        namespace = item.split("/", 1)[0]
        for type_, target in rels:
            other = qualify(target, namespace)
            kind = RelationshipType(type_)
            if kind == RelationshipType.PART_OF:
                result.append(Edge(dependent=other, dependency=item, type=kind))
            else:
                result.append(Edge(dependent=item, dependency=other, type=kind))
    return result


class ImpactGraph:
    """Who depends on whom; answers 'what is hit when X fails' without visiting anything twice."""

    def __init__(self, relationships: Mapping[ItemId, Iterable[tuple[str, str]]]) -> None:
        self._dependents: dict[ItemId, list[Edge]] = defaultdict(list)
        for edge in edges(relationships):
            self._dependents[edge.dependency].append(edge)
        for group in self._dependents.values():
            group.sort(key=lambda e: (e.dependent, e.type))

    def dependents(self, item: ItemId) -> set[ItemId]:
        """Every item that depends on `item`, directly or through others (cycles are safe)."""
        seen: set[ItemId] = set()
        queue = deque([item])
        while queue:
            for edge in self._dependents.get(queue.popleft(), []):
                if edge.dependent not in seen and edge.dependent != item:
                    seen.add(edge.dependent)
                    queue.append(edge.dependent)
        return seen

    def tree(self, item: ItemId) -> ImpactNode:
        """The dependents of `item` as a tree; each item appears once, at its shortest depth."""
        depth: dict[ItemId, int] = {item: 0}
        parent: dict[ItemId, tuple[ItemId, RelationshipType]] = {}
        queue = deque([item])
        while queue:
            current = queue.popleft()
            for edge in self._dependents.get(current, []):
                if edge.dependent not in depth:
                    depth[edge.dependent] = depth[current] + 1
                    parent[edge.dependent] = (current, edge.type)
                    queue.append(edge.dependent)
        children: dict[ItemId, list[ItemId]] = defaultdict(list)
        for child, (up, _) in parent.items():
            children[up].append(child)

        def build(node: ItemId, via: RelationshipType | None) -> ImpactNode:
            kids = tuple(build(c, parent[c][1]) for c in sorted(children[node]))
            return ImpactNode(node, via, kids)

        return build(item, None)


def render_tree(node: ImpactNode, labels: Mapping[ItemId, str] | None = None) -> str:
    """The tree as text, like `tree(1)`: each line says how the item depends on its parent."""
    labels = labels or {}

    def line(n: ImpactNode) -> str:
        label = f" ({labels[n.item]})" if n.item in labels else ""
        via = f"{n.via} → " if n.via else ""
        return f"{via}{n.item}{label}"

    out = [line(node)]

    def walk(n: ImpactNode, prefix: str) -> None:
        for i, child in enumerate(n.children):
            last = i == len(n.children) - 1
            out.append(f"{prefix}{'└── ' if last else '├── '}{line(child)}")
            walk(child, prefix + ("    " if last else "│   "))

    walk(node, "")
    return "\n".join(out)
