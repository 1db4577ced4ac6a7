"""The desk's Changes and CMDB views: the change filter, the item search, and the impact
picture's layout (dependencies left, dependents right, by distance; cycles and missing items)."""

from __future__ import annotations

from typing import Any

from opsledger.domain.desk_views import (
    ChangeFilter,
    burn_down,
    changes,
    impact_picture,
    items,
)


def _item(name: str, *rels: tuple[str, str], health: str = "", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": name, "labels": {"tier": "web"}},
        "spec": {"relationships": [{"type": t, "target": x} for t, x in rels], **spec},
        "status": {"health": health, "class": "Workload"},
    }


ITEMS = [
    _item("web", ("dependsOn", "db"), ("runsOn", "node-1"), health="Healthy", service="shop"),
    _item("db", ("storesIn", "disk"), health="Down", owner="team-data"),
    _item("disk"),
    _item("storefront", ("dependsOn", "web")),
    _item("app", ("partOf", "storefront")),  # the whole (storefront) depends on its part (app)
    _item("node-1"),
    _item("lonely"),
]


def test_the_picture_puts_dependencies_left_and_dependents_right_by_distance() -> None:
    picture = impact_picture("shop/web", ITEMS)
    x = {b.label: b.x for b in picture.boxes}
    assert x["disk"] < x["db"] == x["node-1"] < x["web"] < x["storefront"]
    assert "app" not in x  # app is a dependency of storefront, not of web nor on web
    assert "lonely" not in x
    [centre] = [b for b in picture.boxes if b.centre]
    assert centre.label == "web"
    fills = {b.label: b.fill for b in picture.boxes}
    assert fills["db"] != fills["web"]  # Down and Healthy differ
    assert {line.label for line in picture.lines} == {"dependsOn", "runsOn", "storesIn"}
    assert len(picture.lines) == 4
    assert all(line.x1 < line.x2 for line in picture.lines)
    assert picture.width >= max(b.x for b in picture.boxes)


def test_cycles_unknown_targets_and_room() -> None:
    loop = [_item("a", ("dependsOn", "b")), _item("b", ("dependsOn", "a"), ("dependsOn", "gone"))]
    picture = impact_picture("shop/a", loop)
    labels = {b.label: b for b in picture.boxes}
    assert set(labels) == {"a", "b", "gone"}  # each once, though a and b depend on each other
    assert labels["gone"].known is False
    many = [_item("hub"), *(_item(f"user-{i}", ("dependsOn", "hub")) for i in range(15))]
    crowded = impact_picture("shop/hub", many, per_column=10)
    assert len(crowded.boxes) == 11
    assert crowded.left_out == 5


def test_the_search_and_the_change_filter() -> None:
    assert [i["metadata"]["name"] for i in items(ITEMS, "team-data")] == ["db"]
    assert [i["metadata"]["name"] for i in items(ITEMS, "STORE")] == ["storefront"]
    assert len(items(ITEMS, "tier=web")) == len(ITEMS)
    found = [
        {"metadata": {"creationTimestamp": f"2026-12-0{n}T00:00:00Z"}, "spec": {"service": s},
         "status": {"phase": p}}
        for n, s, p in ((1, "shop", "Completed"), (2, "shop", "InProgress"), (3, "pay", None))
    ]  # fmt: skip
    active = changes(found, ChangeFilter(phase="active"))
    assert [c["status"]["phase"] for c in active] == [None, "InProgress"]  # newest first
    assert [c["status"]["phase"] for c in changes(found, ChangeFilter(phase="ended"))] == [
        "Completed"
    ]
    assert len(changes(found, ChangeFilter(service="shop"))) == 2


def test_the_burn_down_runs_from_all_left_at_the_top_to_overspent_below_zero() -> None:
    chart = burn_down([(100.0, 1.0), (150.0, 0.5), (200.0, -0.5), (999.0, 0.9)], 100.0, 200.0)
    points = [tuple(map(int, p.split(","))) for p in chart.points.split()]
    assert len(points) == 3  # the sample after the window's end is left out
    assert points[0][1] < points[1][1] < chart.zero < points[2][1]  # down: the budget burns
    assert points[0][0] < points[1][0] < points[2][0]
    assert chart.end == points[-1]
    assert chart.last == -0.5
    empty = burn_down([], 0.0, 1.0)
    assert (empty.points, empty.end, empty.first) == ("", None, None)
