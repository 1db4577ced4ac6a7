"""The cross-object views: what each kind contributes, and how the store follows objects."""

from typing import Any

from opsledger.domain.views import (
    BY_SOURCE,
    CHANGE_PLANS,
    CRITICALITY,
    FACTS,
    ITEMS,
    POD_LABELS,
    RELATIONS,
    SERVICE_LEVELS,
    TARGETS,
    Views,
    changes_in_progress,
)


def item(name: str, uid: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": uid,
            "creationTimestamp": f"2026-12-01T10:00:0{uid[-1]}Z",
        },
        "spec": spec,
        "status": {},
    }


DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}


def test_two_items_claiming_one_source_are_both_in_its_view_the_elder_first() -> None:
    views = Views()
    views.observe("configurationitems", item("web", "u1", source=DEPLOYMENT))
    views.observe("configurationitems", item("web-again", "u2", source=DEPLOYMENT))
    [key] = list(views[BY_SOURCE])
    claims = sorted(views[BY_SOURCE][key])
    assert [c[2] for c in claims] == ["web", "web-again"]


def test_an_edit_replaces_what_the_object_contributed() -> None:
    views = Views()
    views.observe("configurationitems", item("web", "u1", source=DEPLOYMENT, criticality="high"))
    views.observe("configurationitems", item("web", "u1", criticality="low"))
    assert dict(views[BY_SOURCE]) == {}
    assert views[CRITICALITY]["shop/web"] == ("low",)


def test_a_deleted_object_leaves_every_view_of_its_kind() -> None:
    views = Views()
    web = item(
        "web", "u1", source=DEPLOYMENT, relationships=[{"type": "dependsOn", "target": "db"}]
    )
    web["status"] = {"observed": {"podLabels": {"app": "web"}}}
    views.observe("configurationitems", web)
    assert views[RELATIONS]["shop/web"] == ((("dependsOn", "db"),),)
    assert views[POD_LABELS]["shop"] == (("web", (("app", "web"),)),)
    views.forget("configurationitems", web)
    assert all(len(views[name]) == 0 for name in (BY_SOURCE, RELATIONS, POD_LABELS, CRITICALITY))


def test_a_list_drops_what_went_unseen_but_keeps_what_an_event_brought_meanwhile() -> None:
    views = Views()
    views.observe("configurationitems", item("gone", "u1"))
    views.observe("configurationitems", item("kept", "u2"))
    since = views.mark()  # the list is read from here
    views.observe("configurationitems", item("new", "u3"))  # an event while it is read
    dropped = views.replace("configurationitems", [item("kept", "u2")], since)
    assert dropped == 1
    assert sorted(views[CRITICALITY]) == ["shop/kept", "shop/new"]


def test_service_levels_changes_and_incidents_fill_their_views() -> None:
    views = Views()
    level = {
        "metadata": {"name": "shop", "namespace": "shop", "uid": "s1"},
        "spec": {"service": "shop", "incidentTargets": [{"priority": "P1", "respond": "5m"}]},
        "status": {"objectives": []},
    }
    views.observe("servicelevels", level)
    assert views[SERVICE_LEVELS][("shop", "shop")][0]["status"] == {"objectives": []}
    assert views[TARGETS][("shop", "shop")] == (({"priority": "P1", "respond": "5m"},),)
    change = {
        "metadata": {"name": "up", "namespace": "shop", "uid": "c1"},
        "spec": {"targets": ["web"], "schedule": {"notBefore": "2026-12-01T10:00:00Z"}},
        "status": {"phase": "InProgress"},
    }
    views.observe("changes", change)
    assert views[CHANGE_PLANS]["shop"] == (
        ("up", ("web",), "2026-12-01T10:00:00Z", None, "InProgress", None),
    )
    incident = {
        "metadata": {"name": "down", "namespace": "shop", "uid": "i1"},
        "spec": {"configurationItems": ["web"], "state": "New"},
        "status": {"openedAt": "2026-12-01T10:00:00Z"},
    }
    views.observe("incidents", incident)
    [fact] = views[FACTS]["shop"]
    assert (fact.name, fact.items, fact.resolved_at) == ("down", ("web",), None)


def test_a_service_level_without_a_service_serves_nothing() -> None:
    views = Views()
    views.observe("servicelevels", {"metadata": {"uid": "s1", "namespace": "x"}, "spec": {}})
    assert len(views[SERVICE_LEVELS]) == 0
    assert len(views[TARGETS]) == 0


def test_the_changes_in_progress_on_an_item_are_named() -> None:
    views = Views()
    for uid, name, phase in (("c1", "up", "InProgress"), ("c2", "later", "Scheduled")):
        views.observe(
            "changes",
            {
                "metadata": {"name": name, "namespace": "shop", "uid": uid},
                "spec": {"targets": ["web"]},
                "status": {"phase": phase},
            },
        )
    assert changes_in_progress(views[CHANGE_PLANS], "shop", "web") == ["up"]
    assert changes_in_progress(views[CHANGE_PLANS], "shop", "db") == []
    assert changes_in_progress(views[CHANGE_PLANS], "other", "web") == []


def test_the_item_sweeps_see_unsynced_items_and_their_dependents_count() -> None:
    views = Views()
    web = item("web", "u1")
    web["status"] = {
        "dependents": 2,
        "conditions": [{"type": "CMDBSynced", "status": "False", "reason": "RemoteUnavailable"}],
    }
    views.observe("configurationitems", web)
    [state] = views[ITEMS]["shop/web"]
    assert state["status"]["unsynced"] is True
    assert state["status"]["dependents"] == 2
    assert views[ITEMS].singles() == [("shop/web", state)]
    web["metadata"]["deletionTimestamp"] = "2026-12-01T10:00:00Z"  # retiring: not swept
    views.observe("configurationitems", web)
    assert "shop/web" not in views[ITEMS]
