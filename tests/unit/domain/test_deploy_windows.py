"""The calendar as Argo CD sync windows and Flux suspensions (domain/deploy_windows.py)."""

from datetime import UTC, datetime, timedelta

from opsledger.domain.calendar_feed import entries, ics
from opsledger.domain.calendars import parse
from opsledger.domain.deploy_windows import (
    calendar_of,
    follows_namespace,
    hold_decision,
    merged_windows,
    suspension,
    sync_windows,
)
from opsledger.domain.windows import Hold
from opsledger.models.servicelevel import ServiceLevelSpec

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LEVEL = ServiceLevelSpec.model_validate(
    {
        "service": "pay",
        "maintenanceWindows": [
            {"schedule": "0 22 * * 6", "duration": "4h", "timeZone": "Europe/Berlin"}
        ],
        "blackouts": [{"schedule": "0 15 * * 5", "duration": "9h", "reason": "Friday"}],
        "freezes": [
            {"start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z", "reason": "EOY"},
            {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z", "reason": "past"},
            {"start": "2027-06-01T00:00:00Z", "end": "2027-06-02T00:00:00Z", "reason": "far"},
        ],
    }
)


def test_windows_blackouts_and_coming_freezes_become_sync_windows() -> None:
    event = Hold(
        NOW + timedelta(days=1), NOW + timedelta(days=1, hours=2), "calendar", "calendar x: y"
    )
    got = sync_windows("pay", LEVEL, [event], NOW)
    assert [(w["kind"], w["schedule"], w["duration"], w["timeZone"]) for w in got] == [
        ("allow", "0 22 * * 6", "4h", "Europe/Berlin"),
        ("deny", "0 15 * * 5", "9h", "UTC"),
        ("deny", "0 12 3 12 *", "120m", "UTC"),  # the calendar event, tomorrow
        ("deny", "0 0 20 12 *", "21600m", "UTC"),  # EOY; the past and the far one left out
    ]
    assert got[3]["description"] == "opsledger: freeze of pay: EOY"


def test_only_the_operators_windows_are_replaced_and_only_when_they_differ() -> None:
    theirs = {"kind": "allow", "schedule": "0 6 * * *", "duration": "1h", "description": "team"}
    wanted = sync_windows("pay", LEVEL, [], NOW)
    merged = merged_windows([theirs], wanted)
    assert merged == [theirs, *wanted]
    assert merged_windows(merged, wanted) is None  # nothing to write
    assert merged_windows(merged, wanted[:1]) == [theirs, wanted[0]]


def test_a_kustomization_is_suspended_while_held_and_resumed_after() -> None:
    friday = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)
    kustomization = {"metadata": {"name": "k"}, "spec": {"suspend": False}}
    held = suspension(kustomization, hold_decision(LEVEL, [], friday), friday)
    assert held is not None
    assert held["spec"] == {"suspend": True}
    assert (
        "blackout: in a blackout until 2026-12-05T00:00:00Z: Friday"
        in (held["metadata"]["annotations"]["opsledger.io/suspended-for-freeze"])
    )
    ours = {"metadata": {**held["metadata"]}, "spec": {"suspend": True}}
    saturday = datetime(2026, 12, 5, 21, 30, tzinfo=UTC)  # inside the window
    resumed = suspension(ours, hold_decision(LEVEL, [], saturday), saturday)
    assert resumed is not None
    assert resumed["spec"] == {"suspend": False}
    theirs = {"metadata": {"name": "k"}, "spec": {"suspend": True}}
    assert suspension(theirs, hold_decision(LEVEL, [], saturday), saturday) is None


def test_the_calendar_is_named_with_or_without_a_namespace() -> None:
    def obj(named: str) -> dict:
        return {
            "metadata": {"namespace": "apps", "annotations": {"opsledger.io/calendar-from": named}}
        }

    assert calendar_of(obj("shop/pay")) == ("shop", "pay")
    assert calendar_of(obj("pay")) == ("apps", "pay")
    assert calendar_of({"metadata": {}}) is None


def test_a_namespace_opts_in_what_it_holds_unless_an_object_opts_out_or_names_its_own() -> None:
    namespace = {"metadata": {"name": "apps", "annotations": {"opsledger.io/calendar-from": "pay"}}}
    plain = {"metadata": {"namespace": "apps", "name": "k"}}
    own = {
        "metadata": {
            "namespace": "apps",
            "annotations": {"opsledger.io/calendar-from": "shop/web"},
        }
    }
    out = {"metadata": {"namespace": "apps", "labels": {"opsledger.io/calendar": "false"}}}
    assert calendar_of(plain, namespace) == ("apps", "pay")
    assert calendar_of(own, namespace) == ("shop", "web")
    assert calendar_of(plain) is None
    assert follows_namespace(plain)
    assert not follows_namespace(out)


def test_the_calendar_feed_is_icalendar_that_reads_back() -> None:
    since = datetime(2026, 12, 3, tzinfo=UTC)
    change = ("upgrade", "Upgrade web", "2026-12-05T21:00:00Z", "2026-12-06T01:00:00Z", "Scheduled")
    rows = entries("pay", LEVEL, [], [change], since=since, until=since + timedelta(days=20))
    kinds = [r.kind for r in rows]
    assert kinds.count("window") == 3
    assert kinds.count("blackout") == 3
    assert "freeze" in kinds
    assert "change" in kinds
    back = parse("feed", ics("shop/pay", rows, since).decode())
    read = back.holds(since, since + timedelta(days=40))
    assert len(read) == len(rows)
    assert "calendar feed: change upgrade (Scheduled): Upgrade web" in {h.what for h in read}
