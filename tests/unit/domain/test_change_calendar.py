"""The change calendar's one precedence, row by row (README, "Change calendar"), and what a window
or a blackout does on the nights clocks change, in two zones."""

from datetime import UTC, datetime, timedelta

import pytest

from opsledger.domain.approval_policy import Identity, judge_exception, parse_policy
from opsledger.domain.changes import change_window
from opsledger.domain.windows import Interval, decide
from opsledger.models.change import ChangeSpec, FreezeException
from opsledger.models.servicelevel import Blackout, Freeze, MaintenanceWindow, ServiceLevelSpec


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


NIGHTLY = MaintenanceWindow(schedule="0 22 * * *", duration="4h")  # 22:00-02:00 UTC
FRIDAY_AFTERNOON = Blackout(
    schedule="0 15 * * 5", duration="9h", reason="no changes on Friday afternoon"
)  # Friday 15:00 - Saturday 00:00 UTC
FREEZE = Freeze(start=utc("2026-12-18T00:00:00Z"), end=utc("2026-12-20T00:00:00Z"), reason="EOY")
FRIDAY_22 = utc("2026-12-04T22:30:00Z")  # inside the nightly window and the Friday blackout


# -- the precedence table ------------------------------------------------------------------------


def test_row_1_without_windows_a_change_may_start_at_any_time() -> None:
    decision = decide(utc("2026-12-02T11:17:00Z"))
    assert (decision.allowed, decision.rule) == (True, "no-windows")


def test_row_2_with_windows_only_inside_one() -> None:
    inside = decide(utc("2026-12-02T23:00:00Z"), windows=[NIGHTLY])
    assert (inside.allowed, inside.rule) == (True, "window")
    outside = decide(utc("2026-12-02T12:00:00Z"), windows=[NIGHTLY])
    assert (outside.allowed, outside.rule) == (False, "window")
    assert outside.next == Interval(utc("2026-12-02T22:00:00Z"), utc("2026-12-03T02:00:00Z"))
    assert outside.reason == (
        "outside the service's maintenance windows; next eligible window "
        "2026-12-02T22:00:00Z to 2026-12-03T02:00:00Z"
    )


def test_row_3_a_blackout_wins_over_a_window() -> None:
    decision = decide(FRIDAY_22, windows=[NIGHTLY], blackouts=[FRIDAY_AFTERNOON])
    assert (decision.allowed, decision.rule) == (False, "blackout")
    assert decision.reason.startswith(
        "in a blackout until 2026-12-05T00:00:00Z: no changes on Friday afternoon "
        "(0 15 * * 5 UTC, 9h)"
    )
    # what is left of the window after the blackout
    assert decision.next == Interval(utc("2026-12-05T00:00:00Z"), utc("2026-12-05T02:00:00Z"))


def test_row_3_a_blackout_holds_without_windows_too() -> None:
    decision = decide(utc("2026-12-04T16:00:00Z"), blackouts=[FRIDAY_AFTERNOON])
    assert (decision.allowed, decision.rule) == (False, "blackout")
    assert decision.next is not None
    assert decision.next.start == utc("2026-12-05T00:00:00Z")
    after = decide(utc("2026-12-05T00:00:00Z"), blackouts=[FRIDAY_AFTERNOON])
    assert after.allowed
    assert after.next == Interval(utc("2026-12-05T00:00:00Z"), utc("2026-12-11T15:00:00Z"))


def test_row_3_a_freeze_wins_over_a_window_and_is_named_before_a_blackout() -> None:
    at = utc("2026-12-18T22:30:00Z")  # a Friday: window, blackout and freeze
    decision = decide(at, windows=[NIGHTLY], blackouts=[FRIDAY_AFTERNOON], freezes=[FREEZE])
    assert (decision.allowed, decision.rule) == (False, "freeze")
    assert decision.reason.startswith("frozen until 2026-12-20T00:00:00Z: EOY")
    assert decision.next == Interval(utc("2026-12-20T00:00:00Z"), utc("2026-12-20T02:00:00Z"))


def test_row_4_an_exception_lets_the_change_through_a_hold_until_it_expires() -> None:
    exception = FreezeException(reason="CVE fix", expires=utc("2026-12-19T12:00:00Z"))
    at = utc("2026-12-18T22:30:00Z")
    allowed = decide(
        at, windows=[NIGHTLY], blackouts=[FRIDAY_AFTERNOON], freezes=[FREEZE], exception=exception
    )
    assert (allowed.allowed, allowed.rule) == (True, "exception")
    assert allowed.reason.startswith(
        "freeze exception until 2026-12-19T12:00:00Z (CVE fix) lifts the freeze (EOY)"
    )
    # Expired: the freeze holds again, and says why the exception does not help.
    late = decide(
        utc("2026-12-19T22:30:00Z"), windows=[NIGHTLY], freezes=[FREEZE], exception=exception
    )
    assert (late.allowed, late.rule) == (False, "freeze")
    assert "(the change's freeze exception has expired)" in late.reason


def test_row_4_an_exception_does_not_open_a_window() -> None:
    exception = FreezeException(reason="CVE fix", expires=utc("2026-12-19T12:00:00Z"))
    at = utc("2026-12-18T12:00:00Z")  # frozen, and outside the nightly window
    decision = decide(at, windows=[NIGHTLY], freezes=[FREEZE], exception=exception)
    assert (decision.allowed, decision.rule) == (False, "window")
    assert decision.next == Interval(utc("2026-12-18T22:00:00Z"), utc("2026-12-19T02:00:00Z"))


def test_row_5_the_schedule_narrows_what_is_left() -> None:
    not_before = utc("2026-12-02T23:30:00Z")
    early = decide(utc("2026-12-02T22:30:00Z"), windows=[NIGHTLY], not_before=not_before)
    assert (early.allowed, early.rule) == (False, "schedule.notBefore")
    assert early.next == Interval(not_before, utc("2026-12-03T02:00:00Z"))
    late = decide(
        utc("2026-12-02T22:30:00Z"), windows=[NIGHTLY], not_after=utc("2026-12-02T22:00:00Z")
    )
    assert (late.allowed, late.rule) == (False, "schedule.notAfter")
    assert late.next is None


def test_row_5_a_hold_is_named_before_the_schedule() -> None:
    decision = decide(
        utc("2026-12-18T22:30:00Z"),
        windows=[NIGHTLY],
        freezes=[FREEZE],
        not_before=utc("2026-12-19T23:00:00Z"),
    )
    assert decision.rule == "freeze"
    assert decision.next == Interval(utc("2026-12-20T00:00:00Z"), utc("2026-12-20T02:00:00Z"))


def test_row_6_an_emergency_change_skips_the_calendar_not_its_schedule() -> None:
    at = utc("2026-12-18T16:00:00Z")
    calendar = {"windows": [NIGHTLY], "blackouts": [FRIDAY_AFTERNOON], "freezes": [FREEZE]}
    decision = decide(at, emergency=True, **calendar)  # type: ignore[arg-type]
    assert (decision.allowed, decision.rule) == (True, "emergency")
    waiting = decide(
        at,
        emergency=True,
        not_before=utc("2026-12-18T17:00:00Z"),
        **calendar,  # type: ignore[arg-type]
    )
    assert (waiting.allowed, waiting.rule) == (False, "schedule.notBefore")


# -- DST: the spring-forward gap and the repeated autumn hour, in two zones ----------------------

# (zone, a wall time inside the skipped hour, the spring day, where it opens in UTC;
#  a wall time inside the repeated hour, the autumn day, where its first occurrence is in UTC)
ZONES = [
    ("Europe/Berlin", "30 2", "2027-03-28", "2027-03-28T01:30:00Z", "2026-10-25", "00:30"),
    ("America/New_York", "30 2", "2027-03-14", "2027-03-14T07:30:00Z", "2026-11-01", None),
]


@pytest.mark.parametrize("kind", [MaintenanceWindow, Blackout])
@pytest.mark.parametrize(("zone", "wall", "spring", "opens"), [z[:4] for z in ZONES])
def test_a_time_in_the_skipped_hour_opens_when_the_clock_reaches_it(
    kind: type[MaintenanceWindow], zone: str, wall: str, spring: str, opens: str
) -> None:
    # 02:30 does not exist that night: it opens at 03:30 local, an hour "late" on the wall,
    # and lasts its elapsed hour.
    extra = {"reason": "batch"} if kind is Blackout else {}
    rule = kind(schedule=f"{wall} * * *", duration="1h", timeZone=zone, **extra)
    at = utc(f"{spring}T00:00:00Z")
    decision = (
        decide(at, windows=[rule])
        if kind is MaintenanceWindow
        else decide(utc(opens) + timedelta(minutes=1), blackouts=[rule])
    )
    if kind is MaintenanceWindow:
        assert decision.next == Interval(utc(opens), utc(opens) + timedelta(hours=1))
    else:
        assert (decision.allowed, decision.rule) == (False, "blackout")
        assert decision.next is not None
        assert decision.next.start == utc(opens) + timedelta(hours=1)


@pytest.mark.parametrize("kind", [MaintenanceWindow, Blackout])
@pytest.mark.parametrize(
    ("zone", "schedule", "autumn", "first", "second"),
    [
        # Berlin: 02:00-02:59 happens twice (00:00-00:59 and 01:00-01:59 UTC)
        ("Europe/Berlin", "30 2 * * *", "2026-10-25", "00:30", "01:30"),
        # New York: 01:00-01:59 happens twice (05:00-05:59 and 06:00-06:59 UTC)
        ("America/New_York", "30 1 * * *", "2026-11-01", "05:30", "06:30"),
    ],
)
def test_a_time_in_the_repeated_hour_opens_once_at_its_first_occurrence(
    *, kind: type[MaintenanceWindow], zone: str, schedule: str, autumn: str, first: str, second: str
) -> None:
    extra = {"reason": "batch"} if kind is Blackout else {}
    rule = kind(schedule=schedule, duration="30m", timeZone=zone, **extra)
    opened = utc(f"{autumn}T{first}:00Z")
    repeat = utc(f"{autumn}T{second}:00Z")
    if kind is MaintenanceWindow:
        decision = decide(opened - timedelta(hours=1), windows=[rule])
        assert decision.next == Interval(opened, opened + timedelta(minutes=30))
        assert not decide(repeat + timedelta(minutes=1), windows=[rule]).allowed
    else:
        assert decide(opened + timedelta(minutes=1), blackouts=[rule]).rule == "blackout"
        assert decide(repeat + timedelta(minutes=1), blackouts=[rule]).allowed


# -- approving a freeze exception ----------------------------------------------------------------

POLICY = parse_policy(
    """
rules:
- approvers: {groups: [sre]}
exceptions:
  approvers: {users: [dana]}
groups:
  sre: [alice, dana, bob]
people:
  bob: {kubernetes: [bob@corp.example], forge: bob}
"""
)


def test_a_freeze_exception_needs_an_approver_the_exceptions_rule_names() -> None:
    alice = [Identity("forge", "alice")]
    refused = judge_exception(POLICY, requester="bob@corp.example", given=alice, proof="review")
    assert not refused.approved
    assert refused.message == (
        "its freeze exception needs 1 review from dana, other than the requester; has none"
    )
    dana = [*alice, Identity("forge", "dana")]
    assert judge_exception(POLICY, requester="bob@corp.example", given=dana, proof="r").approved


def test_the_requester_cannot_approve_their_own_exception() -> None:
    policy = parse_policy("exceptions: {approvers: {users: [bob]}}\n")
    given = [Identity("forge", "bob")]
    mine = judge_exception(policy, requester="bob", given=given, proof="review")
    assert not mine.approved


def test_without_an_exceptions_rule_nobody_can_approve_one() -> None:
    policy = parse_policy("rules: [{approvers: {groups: [sre]}}]\ngroups: {sre: [alice]}\n")
    verdict = judge_exception(
        policy, requester="bob", given=[Identity("forge", "alice")], proof="review"
    )
    assert not verdict.approved
    assert "has no exceptions rule, so nobody may approve a freeze exception" in verdict.message


# -- the calendars of every service the change touches -------------------------------------------


def test_naming_another_service_does_not_step_around_the_targets_freeze() -> None:
    lenient = ServiceLevelSpec(service="sandbox")
    frozen = ServiceLevelSpec(
        service="shop", freezes=[FREEZE], blackouts=[FRIDAY_AFTERNOON], maintenanceWindows=[]
    )
    spec = ChangeSpec(type="normal", summary="s", service="sandbox", targets=["web"])
    at = utc("2026-12-18T12:00:00Z")
    decision = change_window(at, spec, lenient, [("shop", frozen)])
    assert (decision.allowed, decision.rule) == (False, "freeze")
    assert decision.reason.startswith("frozen until 2026-12-20T00:00:00Z: service shop: EOY")
    friday = change_window(utc("2026-12-04T16:00:00Z"), spec, lenient, [("shop", frozen)])
    assert friday.rule == "blackout"
    assert "service shop: no changes on Friday afternoon" in friday.reason
    assert change_window(at, spec, lenient).allowed  # alone, the lenient service would allow it
