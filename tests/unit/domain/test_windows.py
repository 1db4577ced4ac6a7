"""Window math: cron in a time zone across DST and midnight, freezes, schedules, precedence."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from opsledger.domain.windows import Interval, decide, openings
from opsledger.models.servicelevel import Freeze, MaintenanceWindow


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def window(schedule: str, duration: str, zone: str = "UTC") -> MaintenanceWindow:
    return MaintenanceWindow(schedule=schedule, duration=duration, timeZone=zone)


def freeze(start: str, end: str, reason: str = "Black Friday") -> Freeze:
    return Freeze(start=utc(start), end=utc(end), reason=reason)


SATURDAY_NIGHT_BERLIN = window("0 22 * * 6", "4h", "Europe/Berlin")


def test_a_window_opens_at_local_wall_time_in_winter_and_summer() -> None:
    winter = next(openings(SATURDAY_NIGHT_BERLIN, utc("2026-01-05T00:00:00Z")))
    summer = next(openings(SATURDAY_NIGHT_BERLIN, utc("2026-07-06T00:00:00Z")))
    assert winter == Interval(utc("2026-01-10T21:00:00Z"), utc("2026-01-11T01:00:00Z"))
    assert summer == Interval(utc("2026-07-11T20:00:00Z"), utc("2026-07-12T00:00:00Z"))


def test_windows_on_the_days_clocks_change_keep_local_time() -> None:
    # Europe/Berlin: clocks go forward on 2026-03-29 and back on 2026-10-25 (both Sundays).
    daily = window("30 1 * * *", "2h", "Europe/Berlin")
    spring = [i.start for i in _take(openings(daily, utc("2026-03-27T12:00:00Z")), 3)]
    assert spring == [
        utc("2026-03-28T01:30:00+01:00"),
        utc("2026-03-29T01:30:00+01:00"),  # before the jump at 02:00
        utc("2026-03-30T01:30:00+02:00"),
    ]
    autumn = [i.start for i in _take(openings(daily, utc("2026-10-23T12:00:00Z")), 3)]
    assert autumn == [
        utc("2026-10-24T01:30:00+02:00"),
        utc("2026-10-25T01:30:00+02:00"),
        utc("2026-10-26T01:30:00+01:00"),
    ]


def test_a_skipped_wall_time_opens_after_the_gap_and_a_repeated_one_opens_once() -> None:
    skipped = window("30 2 * * *", "1h", "Europe/Berlin")
    on_jump = next(openings(skipped, utc("2026-03-28T23:00:00Z")))
    assert on_jump.start == utc("2026-03-29T03:30:00+02:00")  # 02:30 does not exist that night
    repeated = window("30 2 * * *", "1h", "Europe/Berlin")
    starts = [i.start for i in _take(openings(repeated, utc("2026-10-24T12:00:00Z")), 2)]
    assert starts == [utc("2026-10-25T02:30:00+02:00"), utc("2026-10-26T02:30:00+01:00")]


def test_durations_are_elapsed_time_across_the_autumn_change() -> None:
    night = window("0 1 * * *", "4h", "Europe/Berlin")
    opening = next(openings(night, utc("2026-10-24T12:00:00Z")))
    assert opening.end - opening.start == timedelta(hours=4)
    assert opening.end == utc("2026-10-25T04:00:00+01:00")  # 5 wall-clock hours later


def test_a_window_crossing_midnight_allows_both_sides() -> None:
    windows = [SATURDAY_NIGHT_BERLIN]
    before_midnight = decide(utc("2026-11-28T23:30:00+01:00"), windows=windows)
    after_midnight = decide(utc("2026-11-29T01:30:00+01:00"), windows=windows)
    closed = decide(utc("2026-11-29T02:00:00+01:00"), windows=windows)
    assert before_midnight.allowed
    assert after_midnight.allowed
    assert before_midnight.next == after_midnight.next
    assert not closed.allowed
    assert closed.next == Interval(
        utc("2026-12-05T22:00:00+01:00"), utc("2026-12-06T02:00:00+01:00")
    )
    assert "outside the service's maintenance windows" in closed.reason


def test_without_windows_changes_may_start_any_time() -> None:
    at = utc("2026-11-25T10:00:00Z")
    decision = decide(at)
    assert decision.allowed
    assert decision.next is not None
    assert decision.next.start == at


def test_a_freeze_wins_over_a_window() -> None:
    windows = [window("0 22 * * *", "4h")]
    freezes = [freeze("2026-11-26T00:00:00Z", "2026-11-28T00:00:00Z")]
    inside = decide(utc("2026-11-26T23:00:00Z"), windows=windows, freezes=freezes)
    assert not inside.allowed
    assert inside.reason.startswith("frozen until 2026-11-28T00:00:00Z: Black Friday")
    # The window of the 27th outlasts the freeze: its last two hours are eligible.
    assert inside.next == Interval(utc("2026-11-28T00:00:00Z"), utc("2026-11-28T02:00:00Z"))
    # A freeze starting inside a window cuts the window short.
    partly = decide(utc("2026-11-25T22:30:00Z"), windows=windows, freezes=freezes)
    assert partly.allowed
    assert partly.next == Interval(utc("2026-11-25T22:00:00Z"), utc("2026-11-26T00:00:00Z"))


def test_a_freeze_applies_without_windows() -> None:
    freezes = [freeze("2026-12-20T00:00:00Z", "2027-01-04T00:00:00Z", "holidays")]
    decision = decide(utc("2026-12-24T12:00:00Z"), freezes=freezes)
    assert not decision.allowed
    assert decision.next is not None
    assert decision.next.start == utc("2027-01-04T00:00:00Z")


def test_the_change_schedule_narrows_the_windows() -> None:
    windows = [window("0 22 * * *", "4h")]
    early = decide(
        utc("2026-11-25T22:30:00Z"),
        windows=windows,
        not_before=utc("2026-11-27T23:00:00Z"),
        not_after=utc("2026-11-30T00:00:00Z"),
    )
    assert not early.allowed
    assert early.reason.startswith("waiting for schedule.notBefore (2026-11-27T23:00:00Z)")
    assert early.next == Interval(utc("2026-11-27T23:00:00Z"), utc("2026-11-28T02:00:00Z"))
    late = decide(utc("2026-12-01T00:00:00Z"), windows=windows, not_after=utc("2026-11-30T00:00Z"))
    assert not late.allowed
    assert late.next is None
    assert "notAfter" in late.reason


def test_emergency_changes_ignore_windows_and_freezes_but_not_the_schedule() -> None:
    windows = [window("0 22 * * 6", "1h")]
    freezes = [freeze("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")]
    at = utc("2026-11-25T10:00:00Z")
    assert decide(at, windows=windows, freezes=freezes, emergency=True).allowed
    assert not decide(
        at, windows=windows, emergency=True, not_before=utc("2026-11-25T11:00:00Z")
    ).allowed


def test_overlapping_windows_form_one_window() -> None:
    windows = [window("0 20 * * *", "3h"), window("0 22 * * *", "2h")]
    decision = decide(utc("2026-11-25T20:30:00Z"), windows=windows)
    assert decision.next == Interval(utc("2026-11-25T20:00:00Z"), utc("2026-11-26T00:00:00Z"))


def test_no_window_within_a_year_is_reported() -> None:
    windows = [window("0 22 * * *", "1h")]
    freezes = [freeze("2026-01-01T00:00:00Z", "2028-01-01T00:00:00Z", "migration")]
    decision = decide(utc("2026-11-25T10:00:00Z"), windows=windows, freezes=freezes)
    assert not decision.allowed
    assert decision.next is None
    assert "no eligible window in the next 365 days" in decision.reason


@settings(max_examples=200, deadline=None)
@given(
    at=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    hour=st.integers(0, 23),
    hours=st.integers(1, 30),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney"]),
    frozen=st.booleans(),
)
def test_the_answer_is_consistent(
    at: datetime, hour: int, hours: int, zone: str, frozen: bool
) -> None:
    windows = [window(f"0 {hour} * * *", f"{hours}h", zone)]
    freezes = [freeze("2026-06-01T00:00:00Z", "2026-06-10T00:00:00Z")] if frozen else []
    decision = decide(at, windows=windows, freezes=freezes)
    assert decision.next is not None  # a daily window is always found within a year
    assert decision.next.start < decision.next.end
    assert decision.allowed == decision.next.contains(at)
    if not decision.allowed:
        assert decision.next.start > at
    for f in freezes:
        assert decision.next.end <= f.start or decision.next.start >= f.end


def _take(iterator: object, count: int) -> list[Interval]:
    it = iter(iterator)  # type: ignore[call-overload]
    return [next(it) for _ in range(count)]
