"""Window math: cron in a time zone across DST and midnight, freezes, schedules, precedence."""

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from opsledger.domain.durations import go_duration
from opsledger.domain.windows import Interval, decide, openings
from opsledger.models.change import FreezeException
from opsledger.models.servicelevel import Blackout, Freeze, MaintenanceWindow


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


# -- the interval arithmetic against a plain walk over every occurrence --------------------------


def _walked(
    at: datetime,
    windows: list[MaintenanceWindow],
    holds: list[tuple[datetime, datetime]],
    not_before: datetime | None,
    horizon: timedelta,
) -> Interval | None:
    """The first eligible stretch ending after `at`, found the slow way: every opening from
    croniter in turn, joined while they overlap, holds cut out. The oracle for decide()."""
    since = max(at, not_before) if not_before else at
    upper = at + horizon
    runs = _walked_runs(windows, since, upper) if windows else [(since, upper)]
    for start, end in runs:
        if start >= upper:
            break
        low = max(start, not_before) if not_before else start
        pieces = [p for p in _cut((low, min(end, upper)), holds) if p[1] > at and p[0] < p[1]]
        if pieces:
            return Interval(*min(pieces))
    return None


def _walked_runs(
    windows: list[MaintenanceWindow], since: datetime, upper: datetime
) -> list[tuple[datetime, datetime]]:
    starts: list[tuple[datetime, datetime]] = []
    for w in windows:
        zone = ZoneInfo(w.time_zone)
        duration = go_duration(w.duration)
        local = (since - duration - timedelta(hours=3)).astimezone(zone).replace(tzinfo=None)
        walk = croniter(w.schedule, local)
        while True:
            wall: datetime = walk.get_next(datetime)
            start = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
            if start >= upper + timedelta(hours=3):
                break
            if start + duration > since:
                starts.append((start, start + duration))
    runs: list[tuple[datetime, datetime]] = []
    for start, end in sorted(starts):
        if runs and start <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], end))
        else:
            runs.append((start, end))
    return runs


def _cut(
    piece: tuple[datetime, datetime], holds: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    pieces = [piece]
    for start, end in holds:
        cut = []
        for s, e in pieces:
            if end <= s or start >= e:
                cut.append((s, e))
                continue
            if start > s:
                cut.append((s, start))
            if end < e:
                cut.append((end, e))
        pieces = cut
    return pieces


@st.composite
def _windows(draw: st.DrawFn) -> MaintenanceWindow:
    minute = draw(st.sampled_from(["0", "*/15", "0,30", "5-20/5", "*/7", "59"]))
    hour = draw(st.sampled_from(["*", "1", "2", "0-3", "22", "*/5", "1,13"]))
    day_of_month = draw(st.sampled_from(["*", "1-7", "*/2", "15,29,30,31"]))
    month = draw(st.sampled_from(["*", "*", "1-6", "3,10,11"]))
    day_of_week = draw(st.sampled_from(["*", "*", "0", "1-5", "6"]))
    duration = draw(
        st.sampled_from(["1s", "59s", "1m", "7m", "15m", "30m", "1h", "90m", "4h", "25h"])
    )
    zone = draw(
        st.sampled_from(
            ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]
        )
    )
    return window(f"{minute} {hour} {day_of_month} {month} {day_of_week}", duration, zone)


@settings(max_examples=400, deadline=None)
@given(
    at=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    windows=st.lists(_windows(), min_size=0, max_size=3),
    blackouts=st.lists(_windows(), min_size=0, max_size=2),
    freeze_at=st.lists(st.tuples(st.integers(-48, 24 * 9), st.integers(1, 24 * 5)), max_size=3),
    not_before=st.one_of(st.none(), st.integers(0, 24 * 6)),
    excepted=st.one_of(st.none(), st.integers(-24, 24 * 6)),
)
def test_the_arithmetic_finds_what_walking_every_occurrence_finds(
    *,
    at: datetime,
    windows: list[MaintenanceWindow],
    blackouts: list[MaintenanceWindow],
    freeze_at: list[tuple[int, int]],
    not_before: int | None,
    excepted: int | None,
) -> None:
    freezes = [
        Freeze(start=at + timedelta(hours=s), end=at + timedelta(hours=s + n), reason="f")
        for s, n in freeze_at
    ]
    dark = [Blackout(**w.model_dump(), reason="dark") for w in blackouts]
    exception = (
        FreezeException(reason="x", expires=at + timedelta(hours=excepted))
        if excepted is not None
        else None
    )
    floor = at + timedelta(hours=not_before) if not_before is not None else None
    horizon = timedelta(days=12)
    decision = decide(
        at,
        windows=windows,
        freezes=freezes,
        blackouts=dark,
        exception=exception,
        not_before=floor,
        horizon=horizon,
    )
    if "the search stopped" in decision.reason:
        return  # windows and blackouts taking turns past MAX_STEPS: stricter, and says so
    holds = [(f.start, f.end) for f in freezes]
    holds += _walked_runs(blackouts, at - timedelta(days=2), at + horizon + timedelta(days=1))
    if exception is not None:  # holds before the expiry do not hold
        holds = [(max(s, exception.expires), e) for s, e in holds if e > exception.expires]
    assert decision.next == _walked(at, windows, holds, floor, horizon)
    assert decision.allowed == (decision.next is not None and decision.next.contains(at))


def test_a_minutely_one_second_window_in_a_year_long_freeze_is_decided_at_once() -> None:
    # The input: one opening a minute, each a second long, frozen for a year. Walking the
    # occurrences took 2-3 s of CPU and gave up after 50,000 of them; the answer is the first
    # opening after the freeze (the one at 12:00 closed at 12:00:01, inside it).
    windows = [window("* * * * *", "1s")]
    freezes = [freeze("2026-12-01T00:00:00Z", "2027-11-30T12:00:30Z", "year-long migration")]
    at = utc("2026-12-02T09:00:00Z")
    started = time.perf_counter()
    decision = decide(at, windows=windows, freezes=freezes, horizon=timedelta(days=3650))
    elapsed = time.perf_counter() - started
    assert decision.next == Interval(utc("2027-11-30T12:01:00Z"), utc("2027-11-30T12:01:01Z"))
    assert decision.reason.startswith("frozen until 2027-11-30T12:00:30Z: year-long migration")
    assert elapsed < 0.5  # a guard against a return to walking, not a benchmark (bench/ has one)


def test_a_window_that_never_closes_is_one_stretch_up_to_the_horizon() -> None:
    # Every minute for two minutes: each opening overlaps the next, for ever.
    always = [window("* * * * *", "2m")]
    at = utc("2026-12-02T09:00:30Z")
    decision = decide(at, windows=always)
    assert decision.allowed
    assert decision.next == Interval(utc("2026-12-02T08:59:00Z"), at + timedelta(days=365))
    # In Berlin the hour repeated when clocks go back opens once: the second 02:00-02:59 is a
    # gap, so the stretch ends two minutes after the first 02:59 (00:59 UTC).
    berlin = decide(at, windows=[window("* * * * *", "2m", "Europe/Berlin")])
    assert berlin.next == Interval(utc("2026-12-02T08:59:00Z"), utc("2027-10-31T01:01:00Z"))
    # Weekdays only: the stretch ends two minutes after Friday's last opening.
    weekdays = [window("* * * * 1-5", "2m")]
    friday = decide(utc("2026-12-02T09:00:30Z"), windows=weekdays)
    assert friday.next is not None
    assert friday.next.end == utc("2026-12-05T00:01:00Z")
