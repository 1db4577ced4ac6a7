"""The condition table: polarity and which changes post Events, the same rule for every kind."""

from datetime import UTC, datetime, timedelta

import pytest

from opsledger.domain.conditions import READY, condition_type, summarize
from opsledger.domain.outcome import ConditionUpdate, Event
from opsledger.domain.times import parse_time, rfc3339, stamp
from opsledger.models.common import ConditionStatus

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


def stored(kind: str, *updates: ConditionUpdate) -> list[dict[str, object]]:
    return summarize(kind, [], updates, now=T0, generation=1).wire()


def events(kind: str, before: list[dict[str, object]], *updates: ConditionUpdate) -> list[Event]:
    return summarize(kind, before, updates, now=T0 + timedelta(minutes=1), generation=2).events


def test_ready_posts_when_its_reason_changes_and_a_fixed_spec_reads_normal() -> None:
    invalid = ConditionUpdate(READY, FALSE, "InvalidSpec", "spec.x: bad")
    accepted = ConditionUpdate(READY, TRUE, "Accepted", "valid")
    assert events("ServiceLevel", [], invalid) == [Event("Warning", "InvalidSpec", "spec.x: bad")]
    before = stored("ServiceLevel", invalid)
    assert events("ServiceLevel", before, accepted) == [Event("Normal", "Accepted", "valid")]
    # the same reason again, with another message, is no news
    again = ConditionUpdate(READY, TRUE, "Accepted", "still valid")
    assert events("ServiceLevel", stored("ServiceLevel", accepted), again) == []


def test_a_changes_ready_posts_nothing_its_phase_transitions_do() -> None:
    assert events("Change", [], ConditionUpdate(READY, FALSE, "Failed", "x")) == []


def test_an_item_recorded_for_the_first_time_posts_no_event_but_a_held_one_does() -> None:
    recorded = ConditionUpdate(READY, TRUE, "Recorded", "observed and recorded")
    held = ConditionUpdate(READY, FALSE, "DuplicateSource", "web claims it first")
    assert events("ConfigurationItem", [], recorded) == []
    assert events("ConfigurationItem", stored("ConfigurationItem", recorded), held) == [
        Event("Warning", "DuplicateSource", "web claims it first")
    ]


def test_change_gates_post_only_when_held_and_waiting_reads_normal() -> None:
    waiting = ConditionUpdate("Approved", FALSE, "AwaitingApproval", "merge #3")
    forge = ConditionUpdate("Approved", FALSE, "ForgeUnavailable", "retrying")
    approved = ConditionUpdate("Approved", TRUE, "Merged", "merged by alice")
    assert events("Change", [], waiting) == [Event("Normal", "AwaitingApproval", "merge #3")]
    assert events("Change", stored("Change", waiting), forge) == [
        Event("Warning", "ForgeUnavailable", "retrying")
    ]
    assert events("Change", stored("Change", waiting), approved) == []


def test_conflict_is_bad_when_true() -> None:
    conflict = condition_type("Change", "Conflict")
    assert conflict.is_bad(TRUE)
    assert not conflict.is_bad(FALSE)
    found = ConditionUpdate("Conflict", TRUE, "ChangeInProgress", "db-migrate holds web")
    assert events("Change", [], found) == [Event("Warning", "ChangeInProgress", found.message)]
    assert events("Change", [], ConditionUpdate("Conflict", FALSE, "NoConflict", "none")) == []


def test_an_items_cmdb_outage_posts_once_under_its_own_reason() -> None:
    down = ConditionUpdate("CMDBSynced", FALSE, "RemoteUnavailable", "push failed")
    first = events("ConfigurationItem", [], down)
    assert first == [Event("Warning", "CMDBUnavailable", "push failed")]
    # the next retry fails the same way: the status did not flip, so no second Event
    retry = ConditionUpdate("CMDBSynced", FALSE, "RemoteUnavailable", "push failed again")
    assert events("ConfigurationItem", stored("ConfigurationItem", down), retry) == []
    back = ConditionUpdate("CMDBSynced", TRUE, "Committed", "at abc")
    assert events("ConfigurationItem", stored("ConfigurationItem", down), back) == [
        Event("Normal", "Committed", "at abc")
    ]


@pytest.mark.parametrize(
    ("type_", "bad", "good"),
    [
        ("Healthy", FALSE, TRUE),
        ("CapacityRisk", TRUE, FALSE),
        ("Drifted", TRUE, FALSE),
        ("BudgetExhausted", TRUE, FALSE),
    ],
)
def test_status_flip_types_post_on_a_flip_and_not_on_a_good_first_sight(
    type_: str, bad: ConditionStatus, good: ConditionStatus
) -> None:
    first_good = ConditionUpdate(type_, good, "Fine", "fine")
    gone_bad = ConditionUpdate(type_, bad, "NotFine", "not fine")
    assert events("ConfigurationItem", [], first_good) == []
    assert events("ConfigurationItem", stored("ConfigurationItem", first_good), gone_bad) == [
        Event("Warning", "NotFine", "not fine")
    ]
    worse = ConditionUpdate(type_, bad, "Worse", "worse")
    assert events("ConfigurationItem", stored("ConfigurationItem", gone_bad), worse) == []


def test_an_sla_breach_posts_sla_breached_once() -> None:
    within = ConditionUpdate("SLABreached", FALSE, "WithinTargets", "respond by 10:15")
    breached = ConditionUpdate("SLABreached", TRUE, "Breached", "response target missed")
    assert events("Incident", [], within) == []
    assert events("Incident", [], ConditionUpdate("SLABreached", UNKNOWN, "NoTargets", "")) == []
    assert events("Incident", stored("Incident", within), breached) == [
        Event("Warning", "SLABreached", "response target missed")
    ]
    assert events("Incident", stored("Incident", breached), breached) == []


def test_summarize_keeps_the_transition_time_and_says_whether_anything_changed() -> None:
    before = stored("ServiceLevel", ConditionUpdate(READY, TRUE, "Accepted", "valid"))
    same = summarize(
        "ServiceLevel",
        before,
        [ConditionUpdate(READY, TRUE, "Accepted", "valid")],
        now=T0 + timedelta(hours=1),
        generation=1,
    )
    assert not same.changed
    assert same.conditions[0].last_transition_time == T0
    assert same.ready() is True
    other = summarize(
        "ServiceLevel",
        before,
        [ConditionUpdate("Measured", FALSE, "PrometheusUnavailable", "down")],
        now=T0,
        generation=1,
    )
    assert other.changed
    assert [c.type for c in other.conditions] == [READY, "Measured"]


def test_times_parse_what_they_format() -> None:
    moment = datetime(2026, 12, 1, 19, 44, 43, 123456, tzinfo=UTC)
    assert rfc3339(moment) == "2026-12-01T19:44:43Z"
    assert parse_time("2026-12-01T19:44:43Z") == moment.replace(microsecond=0)
    assert parse_time("2026-12-01T20:44:43+01:00") == moment.replace(microsecond=0)
    assert parse_time("2026-12-01T19:44:43") == moment.replace(microsecond=0)  # naive is UTC
    assert parse_time("yesterday") is None
    assert parse_time(None) is None
    assert parse_time(moment) is moment
    assert stamp(None) is None


def test_a_caller_that_needs_a_zone_can_keep_a_naive_time_naive() -> None:
    naive = parse_time("2026-12-01T19:44:43", naive=None)
    assert naive == datetime(2026, 12, 1, 19, 44, 43)
    assert naive is not None
    assert naive.tzinfo is None
    assert parse_time("2026-12-01T19:44:43Z", naive=None) == datetime(
        2026, 12, 1, 19, 44, 43, tzinfo=UTC
    )


def test_moving_between_two_good_states_posts_nothing() -> None:
    no_risk = ConditionUpdate("CapacityRisk", FALSE, "NoRiskWithinHorizon", "none")
    no_data = ConditionUpdate("CapacityRisk", UNKNOWN, "NoData", "no usage series")
    assert events("ConfigurationItem", stored("ConfigurationItem", no_risk), no_data) == []
    down = ConditionUpdate("Healthy", FALSE, "Down", "0 of 3 ready")
    unknown = ConditionUpdate("Healthy", UNKNOWN, "PrometheusUnavailable", "no answer")
    assert events("ConfigurationItem", stored("ConfigurationItem", down), unknown) == [
        Event("Warning", "PrometheusUnavailable", "no answer")
    ]


def test_an_item_without_a_cmdb_remote_is_not_reported_as_an_outage() -> None:
    unconfigured = ConditionUpdate("CMDBSynced", UNKNOWN, "NotConfigured", "no remote")
    assert events("ConfigurationItem", [], unconfigured) == []
    assert not condition_type("ConfigurationItem", "CMDBSynced").is_bad(UNKNOWN)
