"""Incident lifecycle and SLA timers, with time as a parameter."""

from datetime import UTC, datetime, timedelta

import pytest

from opsledger.domain.durations import format_duration, go_duration
from opsledger.domain.incidents import (
    Lifecycle,
    Targets,
    advance,
    next_deadline,
    sla,
    targets_for,
)

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
P1 = Targets(respond=timedelta(minutes=15), resolve=timedelta(hours=4))


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _open() -> Lifecycle:
    return advance(
        Lifecycle(state="New", opened_at=T0),
        state="New",
        assignee=None,  # type: ignore[arg-type]
        priority="P1",
        now=T0,
    )


def test_opening_records_the_priority() -> None:
    life = _open()
    assert [e["event"] for e in life.timeline] == ["Opened"]
    assert life.timeline[0]["detail"] == "priority P1"


def test_acknowledge_then_resolve_sets_times_and_timeline() -> None:
    life = advance(_open(), state="Acknowledged", assignee="ana", priority="P1", now=_at(10))
    life = advance(life, state="Resolved", assignee="ana", priority="P1", now=_at(90))
    assert life.acknowledged_at == _at(10)
    assert life.resolved_at == _at(90)
    assert [e["event"] for e in life.timeline] == ["Opened", "Assigned", "Acknowledged", "Resolved"]


def test_jumping_straight_to_resolved_also_acknowledges() -> None:
    life = advance(_open(), state="Resolved", assignee=None, priority="P1", now=_at(30))
    assert life.acknowledged_at == life.resolved_at == _at(30)


def test_reopening_clears_resolution_but_keeps_history() -> None:
    life = advance(_open(), state="Resolved", assignee=None, priority="P1", now=_at(30))
    life = advance(life, state="InProgress", assignee=None, priority="P1", now=_at(40))
    assert life.resolved_at is None
    assert life.timeline[-1]["event"] == "Reopened"


def test_the_same_spec_twice_adds_nothing() -> None:
    life = advance(_open(), state="Acknowledged", assignee=None, priority="P1", now=_at(5))
    again = advance(life, state="Acknowledged", assignee=None, priority="P1", now=_at(50))
    assert again.timeline == life.timeline


def test_priority_changes_are_recorded() -> None:
    life = advance(_open(), state="New", assignee=None, priority="P3", now=_at(5))
    assert life.timeline[-1] == {"at": _at(5), "event": "PriorityChanged", "detail": "P1 → P3"}


def test_response_is_breached_when_overdue_or_late() -> None:
    life = _open()
    assert not sla(life, P1, _at(14)).response_breached
    assert sla(life, P1, _at(16)).response_breached  # overdue, not yet acknowledged
    late = advance(life, state="Acknowledged", assignee=None, priority="P1", now=_at(20))
    assert sla(late, P1, _at(20)).response_breached  # acknowledged, but late
    on_time = advance(life, state="Acknowledged", assignee=None, priority="P1", now=_at(5))
    assert not sla(on_time, P1, _at(300)).response_breached
    assert sla(on_time, P1, _at(300)).resolution_breached


def test_the_next_deadline_is_the_earliest_pending_one() -> None:
    life = _open()
    assert next_deadline(life, sla(life, P1, _at(1))) == _at(15)
    acked = advance(life, state="Acknowledged", assignee=None, priority="P1", now=_at(5))
    assert next_deadline(acked, sla(acked, P1, _at(6))) == _at(240)
    done = advance(acked, state="Resolved", assignee=None, priority="P1", now=_at(60))
    assert next_deadline(done, sla(done, P1, _at(61))) is None


def test_targets_are_looked_up_by_priority() -> None:
    targets = [{"priority": "P1", "respond": "15m", "resolve": "4h"}]
    assert targets_for("P1", targets) == P1
    assert targets_for("P2", targets) is None


def test_go_durations_round_trip() -> None:
    assert go_duration("1h30m") == timedelta(minutes=90)
    assert go_duration("1.5h") == timedelta(minutes=90)
    assert format_duration(timedelta(seconds=3723)) == "1h2m3s"
    assert format_duration(timedelta(seconds=42)) == "42s"
    with pytest.raises(ValueError, match="Go duration"):
        go_duration("15 minutes")
