from datetime import UTC, datetime, timedelta

from opsledger.domain.conditions import find, parse_conditions, set_condition
from opsledger.models.common import ConditionStatus

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_a_new_condition_starts_its_transition_now() -> None:
    conditions = set_condition(
        [],
        type="Ready",
        status=ConditionStatus.TRUE,
        reason="Accepted",
        message="ok",
        now=T0,
        generation=1,
    )
    ready = find(conditions, "Ready")
    assert ready is not None
    assert ready.last_transition_time == T0
    assert ready.observed_generation == 1


def test_same_status_keeps_the_transition_time_but_takes_the_new_message() -> None:
    first = set_condition(
        [],
        type="Ready",
        status=ConditionStatus.FALSE,
        reason="InvalidSpec",
        message="a",
        now=T0,
        generation=1,
    )
    later = T0 + timedelta(minutes=5)
    second = set_condition(
        first,
        type="Ready",
        status=ConditionStatus.FALSE,
        reason="InvalidSpec",
        message="b",
        now=later,
        generation=2,
    )
    ready = find(second, "Ready")
    assert ready is not None
    assert ready.last_transition_time == T0
    assert (ready.message, ready.observed_generation) == ("b", 2)


def test_a_status_flip_moves_the_transition_time_and_keeps_other_conditions() -> None:
    conditions = set_condition(
        [],
        type="Drifted",
        status=ConditionStatus.FALSE,
        reason="InSync",
        message="",
        now=T0,
        generation=1,
    )
    conditions = set_condition(
        conditions,
        type="Ready",
        status=ConditionStatus.FALSE,
        reason="InvalidSpec",
        message="",
        now=T0,
        generation=1,
    )
    later = T0 + timedelta(seconds=30)
    conditions = set_condition(
        conditions,
        type="Ready",
        status=ConditionStatus.TRUE,
        reason="Accepted",
        message="",
        now=later,
        generation=2,
    )
    assert [c.type for c in conditions] == ["Drifted", "Ready"]
    ready = find(conditions, "Ready")
    assert ready is not None
    assert ready.last_transition_time == later


def test_stored_conditions_parse_and_broken_entries_are_dropped() -> None:
    stored = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Accepted",
            "message": "",
            "lastTransitionTime": "2026-11-25T10:00:00Z",
            "observedGeneration": 3,
        },
        {"type": "Broken"},
    ]
    parsed = parse_conditions(stored)
    assert [c.type for c in parsed] == ["Ready"]
    assert parsed[0].observed_generation == 3
