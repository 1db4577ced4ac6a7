"""What the service desk's Changes and CMDB pages show: changes by phase and service, items found
by a search, and an item's impact as a picture (its dependencies to the left, what depends on it
to the right, by distance), laid out here so the page only draws it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsledger.domain.impact import edges
from opsledger.domain.times import rfc3339

ACTIVE = ("PendingApproval", "Approved", "Scheduled", "InProgress", "Verifying")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _newest_first(objects: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(objects, key=lambda o: str(_meta(o).get("creationTimestamp")), reverse=True)


@dataclass(frozen=True)
class ChangeFilter:
    phase: str | None = None  # "active", "ended" or a phase name
    service: str | None = None

    def matches(self, change: Mapping[str, Any]) -> bool:
        spec, status = change.get("spec") or {}, change.get("status") or {}
        phase = status.get("phase")
        if self.service and spec.get("service") != self.service:
            return False
        if self.phase == "active":
            return phase in ACTIVE or phase is None
        if self.phase == "ended":
            return phase is not None and phase not in ACTIVE
        return not self.phase or phase == self.phase


def changes(
    found: Iterable[Mapping[str, Any]], chosen: ChangeFilter, limit: int = 500
) -> list[Mapping[str, Any]]:
    """The changes the filter lets through, newest first."""
    return _newest_first([c for c in found if chosen.matches(c)])[:limit]


def items(
    found: Iterable[Mapping[str, Any]], query: str, limit: int = 200
) -> list[Mapping[str, Any]]:
    """The items whose name, namespace, service, class, owner or labels hold every word of
    `query` (case-insensitive), by namespace and name."""
    words = query.lower().split()
    hits = []
    for item in found:
        meta, spec, status = _meta(item), item.get("spec") or {}, item.get("status") or {}
        text = " ".join(
            str(v)
            for v in (
                meta.get("namespace"),
                meta.get("name"),
                spec.get("service"),
                spec.get("owner"),
                status.get("class"),
                *(f"{k}={v}" for k, v in (meta.get("labels") or {}).items()),
            )
            if v
        ).lower()
        if all(w in text for w in words):
            hits.append(item)
    hits.sort(key=lambda i: (str(_meta(i).get("namespace")), str(_meta(i).get("name"))))
    return hits[:limit]


# -- the impact picture -----------------------------------------------------------------------

BOX_WIDTH, BOX_HEIGHT, COLUMN, ROW, MARGIN = 168, 34, 260, 50, 16
HEALTH_FILL = {"Healthy": "#dff3e4", "Degraded": "#fdf0d5", "Down": "#f9d6d5"}


@dataclass(frozen=True)
class Box:
    item: str  # "namespace/name"
    label: str
    x: int
    y: int
    fill: str
    centre: bool = False
    known: bool = True  # an item of the cluster (a relationship may name one that is not)


@dataclass(frozen=True)
class Line:
    x1: int
    y1: int
    x2: int
    y2: int
    label: str


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    boxes: tuple[Box, ...]
    lines: tuple[Line, ...]
    left_out: int  # items beyond the columns' room


def impact_picture(
    item: str, found: Iterable[Mapping[str, Any]], *, depth: int = 3, per_column: int = 10
) -> Picture:
    """`item` ("namespace/name") in the middle, what it depends on to the left and what depends
    on it to the right, one column per step (up to `depth`), with a line per relationship."""
    relationships: dict[str, list[tuple[str, str]]] = {}
    health: dict[str, str] = {}
    for obj in found:
        key = f"{_meta(obj).get('namespace')}/{_meta(obj).get('name')}"
        declared = (obj.get("spec") or {}).get("relationships") or []
        rels = [*declared, *((obj.get("status") or {}).get("relationships") or [])]  # + discovered
        relationships[key] = [(str(r.get("type")), str(r.get("target"))) for r in rels]
        health[key] = str((obj.get("status") or {}).get("health") or "")
    graph = edges(relationships)
    column = {item: 0}
    for sign, near, far in ((-1, "dependent", "dependency"), (1, "dependency", "dependent")):
        frontier = [item]
        for step in range(1, depth + 1):
            nxt = []
            for edge in graph:
                a, b = getattr(edge, near), getattr(edge, far)
                if a in frontier and b not in column:
                    column[b] = sign * step
                    nxt.append(b)
            frontier = nxt
    by_column: dict[int, list[str]] = {}
    for name, col in sorted(column.items()):
        by_column.setdefault(col, []).append(name)
    shown = {c: names[:per_column] for c, names in by_column.items()}
    left_out = sum(len(n) - len(shown[c]) for c, n in by_column.items())
    low = min(shown)
    rows = max(len(n) for n in shown.values())
    height = MARGIN * 2 + rows * ROW
    place: dict[str, tuple[int, int]] = {}
    boxes = []
    for col, names in sorted(shown.items()):
        top = MARGIN + (rows - len(names)) * ROW // 2
        for index, name in enumerate(names):
            x, y = MARGIN + (col - low) * COLUMN, top + index * ROW
            place[name] = (x, y)
            known = name in relationships
            boxes.append(
                Box(
                    name,
                    name.split("/", 1)[1] if name.startswith(item.split("/", 1)[0] + "/") else name,
                    x,
                    y,
                    HEALTH_FILL.get(health.get(name, ""), "#eef1f5" if known else "#ffffff"),
                    centre=name == item,
                    known=known,
                )
            )
    lines = []
    for edge in graph:
        if edge.dependent in place and edge.dependency in place:
            (x1, y1), (x2, y2) = place[edge.dependent], place[edge.dependency]
            if x1 == x2:
                continue  # both at the same distance: drawn through their columns' neighbours
            left, right = ((x2, y2), (x1, y1)) if x2 < x1 else ((x1, y1), (x2, y2))
            lines.append(
                Line(
                    left[0] + BOX_WIDTH,
                    left[1] + BOX_HEIGHT // 2,
                    right[0],
                    right[1] + BOX_HEIGHT // 2,
                    str(edge.type),
                )
            )
    width = MARGIN * 2 + (max(shown) - low) * COLUMN + BOX_WIDTH
    return Picture(width, height, tuple(boxes), tuple(lines), left_out)


# -- a service's page --------------------------------------------------------------------------

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 560, 120, 6


@dataclass(frozen=True)
class BurnDown:
    """An objective's error budget left over its window, as a line in a chart's box: 1 (all
    left) at the top, 0 (spent) at `zero`, overspent below it."""

    points: str  # "x,y x,y ..." for an SVG polyline; empty: nothing recorded
    zero: int  # the y of "spent"
    end: tuple[int, int] | None  # the last point (marked: a new objective has only that one)
    first: str | None  # when the recorded line begins (RFC 3339)
    last: float | None  # the budget left at its end
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


def burn_down(samples: Iterable[tuple[float, float]], start: float, end: float) -> BurnDown:
    """`samples` (unix time, budget left) between `start` and `end` as a BurnDown."""
    kept = sorted((t, v) for t, v in samples if start <= t <= end)
    low = min([0.0, *(v for _, v in kept)])
    span_y = 1.0 - low or 1.0
    inner_w, inner_h = CHART_WIDTH - 2 * CHART_PAD, CHART_HEIGHT - 2 * CHART_PAD

    def y(value: float) -> int:
        return round(CHART_PAD + (1.0 - min(value, 1.0)) / span_y * inner_h)

    xy = [(round(CHART_PAD + (t - start) / (end - start or 1) * inner_w), y(v)) for t, v in kept]
    first = rfc3339(datetime.fromtimestamp(kept[0][0], UTC)) if kept else None
    return BurnDown(
        " ".join(f"{x},{y_}" for x, y_ in xy),
        y(0.0),
        xy[-1] if xy else None,
        first,
        kept[-1][1] if kept else None,
    )
