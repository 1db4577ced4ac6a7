"""When a change may start: the change calendar of its service, and the change's own schedule.

One precedence, in this order (README, "Change calendar"):
1. `schedule.notAfter` passed: the change can no longer start.
2. A hold (a freeze, a blackout or an event of one of the service's calendars) always wins over
   a maintenance window: nothing but an emergency change starts inside one, unless the change
   carries an approved freeze exception that has not expired.
3. `schedule.notBefore` not reached: the change waits for it.
4. With maintenance windows, only inside one; without any, at any time.
Emergency changes skip windows and holds, never their schedule. A freeze exception lifts holds
only: outside the maintenance windows the change still waits for one.

Cron schedules (windows and blackouts) are read as wall-clock time in their IANA zone, so
"0 22 * * 6" in Europe/Berlin opens at 22:00 Berlin time in summer and in winter. A wall-clock
time that does not exist (the hour skipped when clocks go forward) opens when the clock reaches
it, i.e. shifted forward by the skipped hour; a wall-clock time that happens twice (the hour
repeated when clocks go back) opens once, at its first occurrence. Durations are elapsed time: a
4h window opened at 01:00 on the night clocks go back closes four real hours later, at 04:00
local time. Calendar events follow the same rules (`domain/calendars.py`).

The answer is found by interval arithmetic, not by walking occurrences one by one: a schedule is
a set of wall-clock times of day on the days it matches, so a window's openings on one day are
found by bisection, a run of overlapping openings ends at the first gap longer than the duration
(known per schedule), and a hold is stepped over in one jump. A decision costs a few day
lookups per window and hold, whatever the schedule's density or the horizon: a minutely window
in a year-long freeze is decided as fast as a weekly one. Windows and blackouts that take turns
(each window opening swallowed by a blackout) cost one step per turn; the search stops after
MAX_STEPS of them and says so (stricter: no eligible time is claimed that was not found).

Every function takes the time as a parameter; nothing here reads a clock.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

from opsledger.domain.durations import go_duration
from opsledger.domain.times import rfc3339
from opsledger.models.change import FreezeException
from opsledger.models.servicelevel import Blackout, Freeze, MaintenanceWindow

HORIZON = timedelta(days=365)  # how far ahead the next eligible window is searched
# Windows overlapping each other in turn (A, then B, then A...) are joined at most this many
# times; past it the joined window is reported as ending there (earlier than it does: stricter).
MAX_CHAIN = 10_000

_DAYS_KEPT = 4096  # days of openings a compiled window keeps
_US = timedelta(microseconds=1)
_MINUTE = 60_000_000
_DAY = 1440 * _MINUTE
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass(frozen=True, order=True)
class Interval:
    """[start, end) in UTC."""

    start: datetime
    end: datetime

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True)
class Decision:
    """Whether a change may start at a moment, why, and the window it falls in or waits for."""

    allowed: bool
    reason: str
    next: Interval | None
    # What decided: window, no-windows, emergency, exception (allowed); freeze, blackout,
    # calendar, window, schedule.notBefore, schedule.notAfter, none (not allowed).
    rule: str = "window"

    def to_json(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "rule": self.rule,
            "reason": self.reason,
            "next": {"start": rfc3339(self.next.start), "end": rfc3339(self.next.end)}
            if self.next
            else None,
        }


@dataclass(frozen=True)
class _Schedule:
    """A five-field cron expression as sets: wall-clock times of day, and which days match."""

    times: tuple[int, ...]  # microseconds after local midnight, ascending
    days_of_month: frozenset[int] | None  # None: any
    months: frozenset[int] | None
    days_of_week: frozenset[int] | None  # cron numbering: 0 is Sunday

    def matches(self, day: date) -> bool:
        if self.months is not None and day.month not in self.months:
            return False
        by_month_day = self.days_of_month is None or day.day in self.days_of_month
        by_week_day = self.days_of_week is None or day.isoweekday() % 7 in self.days_of_week
        if self.days_of_month is not None and self.days_of_week is not None:
            return by_month_day or by_week_day  # cron: either restricted day field matches
        return by_month_day and by_week_day


@lru_cache(maxsize=512)
def _schedule(expression: str) -> _Schedule:
    fields, _ = croniter.expand(expression)
    minutes, hours, days_of_month, months, days_of_week = fields[:5]

    def chosen(values: list[int | str], everything: range) -> list[int]:
        return list(everything) if values == ["*"] else sorted({int(v) for v in values})

    def restricted(values: list[int | str]) -> frozenset[int] | None:
        return None if values == ["*"] else frozenset(int(v) for v in values)

    times = tuple(
        (hour * 60 + minute) * _MINUTE
        for hour in chosen(hours, range(24))
        for minute in chosen(minutes, range(60))
    )
    return _Schedule(times, restricted(days_of_month), restricted(months), restricted(days_of_week))


@dataclass(frozen=True)
class _Day:
    """A matching day's openings, in UTC microseconds.

    On a day without a change of UTC offset the openings are the schedule's times after the
    day's midnight (`base`); on the day clocks change they are listed one by one (`listed`).
    """

    ordinal: int
    base: int
    offsets: tuple[int, ...]  # times after `base`, or (listed) the UTC openings themselves
    breaks: tuple[int, ...]  # indices k whose next opening starts after k's opening has ended
    listed: bool

    @property
    def count(self) -> int:
        return len(self.offsets)

    def start(self, index: int) -> int:
        return self.offsets[index] if self.listed else self.base + self.offsets[index]

    def first_after(self, moment: int) -> int:
        """The index of the first opening starting after `moment` (count if none)."""
        return bisect_right(self.offsets, moment if self.listed else moment - self.base)

    def run_end(self, index: int) -> int | None:
        """The last index of the run of joined openings `index` is in, None: the day's end."""
        at = bisect_left(self.breaks, index)
        return self.breaks[at] if at < len(self.breaks) else None


class _Window:
    """One maintenance window, compiled: its schedule, zone, duration, and the gaps it leaves."""

    def __init__(self, schedule: str, zone: str, duration: str) -> None:
        self.schedule = _schedule(schedule)
        self.zone = ZoneInfo(zone)
        self.duration = go_duration(duration) // _US
        self.breaks = _breaks(self.schedule.times, self.duration)
        self._days: dict[int, _Day | None] = {}

    def local_ordinal(self, moment: int) -> int:
        return (_EPOCH + moment * _US).astimezone(self.zone).date().toordinal()

    def day(self, ordinal: int) -> _Day | None:
        """The openings on a local day, None when the schedule does not match it."""
        if ordinal not in self._days:
            if len(self._days) > _DAYS_KEPT:
                self._days.clear()
            self._days[ordinal] = self._build(ordinal)
        return self._days[ordinal]

    def next_matching(self, ordinal: int, limit: int) -> int | None:
        """The first matching local day from `ordinal` on, up to `limit`."""
        months = self.schedule.months
        while ordinal <= limit:
            day = date.fromordinal(ordinal)
            if months is not None and day.month not in months:
                following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
                ordinal = following.toordinal()
                continue
            if self.schedule.matches(day):
                return ordinal
            ordinal += 1
        return None

    def _build(self, ordinal: int) -> _Day | None:
        if not self.schedule.matches(date.fromordinal(ordinal)):
            return None
        wall_midnight = (ordinal - _EPOCH_ORDINAL) * _DAY
        before, after = self._offset(ordinal, 0), self._offset(ordinal + 1, 0)
        times = self.schedule.times
        if before == after:
            return _Day(ordinal, wall_midnight - before, times, self.breaks, listed=False)
        # The clocks change today. fold=0 reads a skipped or repeated wall time with the offset
        # in force before the change: times before the first wall time read with the new
        # offset keep the old one.
        low, high = 0, 1440
        while low < high:
            middle = (low + high) // 2
            if self._offset(ordinal, middle) == after:
                high = middle
            else:
                low = middle + 1
        boundary = low * _MINUTE
        starts = sorted(wall_midnight + t - (before if t < boundary else after) for t in times)
        return _Day(ordinal, 0, tuple(starts), _breaks(tuple(starts), self.duration), listed=True)

    def _offset(self, ordinal: int, minute: int) -> int:
        day = date.fromordinal(ordinal)
        wall = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=self.zone)
        offset = wall.utcoffset()
        return offset // _US if offset is not None else 0


@lru_cache(maxsize=256)
def _compiled(schedule: str, zone: str, duration: str) -> _Window:
    return _Window(schedule, zone, duration)


def _compile(window: MaintenanceWindow | Blackout) -> _Window:
    return _compiled(window.schedule, window.time_zone, window.duration)


def _breaks(starts: tuple[int, ...], duration: int) -> tuple[int, ...]:
    """Indices whose next opening starts after the opening has ended (a gap in the window)."""
    return tuple(k for k in range(len(starts) - 1) if starts[k + 1] - starts[k] > duration)


def _first_opening(window: _Window, moment: int, limit: int) -> tuple[_Day, int] | None:
    """The first opening starting after `moment`, on a local day up to `limit`."""
    ordinal: int | None = window.local_ordinal(moment) - 1
    while ordinal is not None and ordinal <= limit:
        day = window.day(ordinal)
        if day is not None:
            index = day.first_after(moment)
            if index < day.count:
                return day, index
        ordinal = window.next_matching(ordinal + 1, limit)
    return None


def _run(window: _Window, day: _Day, index: int, upper: int) -> tuple[int, int]:
    """From an opening, the joined run of openings it starts: (its start, the run's end)."""
    start = day.start(index)
    while True:
        last = day.run_end(index)
        if last is not None:
            return start, day.start(last) + window.duration
        end = day.start(day.count - 1) + window.duration
        if end >= upper:
            return start, end
        following = window.next_matching(day.ordinal + 1, window.local_ordinal(end) + 1)
        next_day = window.day(following) if following is not None else None
        if next_day is None or next_day.start(0) > end:
            return start, end
        day, index = next_day, 0


def _run_after(window: _Window, moment: int, upper: int, limit: int) -> tuple[int, int] | None:
    """The first run of `window` that ends after `moment` (it may have begun before)."""
    found = _first_opening(window, moment - window.duration, limit)
    if found is None or found[0].start(found[1]) >= upper:
        return None
    return _run(window, found[0], found[1], upper)


def _joined(windows: Sequence[_Window], moment: int, upper: int) -> tuple[int, int] | None:
    """The first stretch covered by any window that ends after `moment`."""
    limit = max(w.local_ordinal(upper) + 1 for w in windows)
    runs = [_run_after(w, moment, upper, limit) for w in windows]
    starts = [run[0] for run in runs if run is not None]
    if not starts:
        return None
    start = min(starts)
    end = min(run[1] for run in runs if run is not None and run[0] == start)
    for _ in range(MAX_CHAIN):
        extended = False
        for position, window in enumerate(windows):
            run = runs[position]
            if run is not None and run[1] <= end:
                run = runs[position] = _run_after(window, end, upper, limit)
            if run is not None and run[0] <= end < run[1]:
                end, extended = run[1], True
        if not extended or end >= upper:
            break
    return start, end


def openings(window: MaintenanceWindow | Blackout, since: datetime) -> Iterator[Interval]:
    """The openings of `window` that end after `since`, one by one, in order of their start."""
    compiled = _compile(window)
    moment = _micros(since) - compiled.duration
    found = _first_opening(compiled, moment, compiled.local_ordinal(moment) + 3660)
    while found is not None:
        day, index = found
        start = day.start(index)
        yield Interval(_moment(start), _moment(start + compiled.duration))
        if index + 1 < day.count:
            found = day, index + 1
        else:
            found = _first_opening(compiled, start, compiled.local_ordinal(start) + 3660)


@dataclass(frozen=True)
class Hold:
    """A stretch in which changes are held: a freeze, or an event of a shared calendar."""

    start: datetime
    end: datetime
    rule: str  # the kind: "freeze" or "calendar"
    what: str  # what holds, for the reason: "release freeze", "calendar holidays: Christmas Day"


def freeze_holds(freezes: Sequence[Freeze]) -> list[Hold]:
    return [Hold(_utc(f.start), _utc(f.end), "freeze", f.reason) for f in freezes]


def decide(
    at: datetime,
    *,
    windows: Sequence[MaintenanceWindow] = (),
    freezes: Sequence[Freeze] = (),
    blackouts: Sequence[Blackout] = (),
    holds: Sequence[Hold] = (),
    exception: FreezeException | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    emergency: bool = False,
    horizon: timedelta = HORIZON,
) -> Decision:
    """May a change start at `at`? The rule that decided, and the window it is in or the next
    eligible one. `holds` are calendar events (freezes are given as `freezes`)."""
    at = _utc(at)
    if not_after and _utc(not_after) <= at:
        return Decision(
            False,
            f"schedule.notAfter ({rfc3339(not_after)}) has passed: the change can no longer "
            "start; cancel it or move notAfter",
            None,
            rule="schedule.notAfter",
        )
    calendar = _Calendar(
        windows=[] if emergency else [_compile(w) for w in windows],
        blackouts=[] if emergency else list(blackouts),
        holds=[] if emergency else [*freeze_holds(freezes), *holds],
        excepted_until=_micros(exception.expires) if exception and not emergency else None,
    )
    upper = _micros(min(at + horizon, _utc(not_after)) if not_after else at + horizon)
    floor = _micros(not_before) if not_before else None
    found, stopped = calendar.eligible(_micros(at), floor=floor, upper=upper)
    held = None if emergency else calendar.held_at(_micros(at), upper)
    if found is not None and found.start <= at:
        return _allowed(
            found,
            calendar,
            held=held,
            exception=exception,
            emergency=emergency,
            upper=_moment(upper),
        )
    excepted = calendar.excepted_until is not None and _micros(at) < calendar.excepted_until
    rule, why = _why_not(
        at, calendar, None if excepted else held, windows=bool(windows), not_before=not_before
    )
    if found is not None:
        why += f"; next eligible window {rfc3339(found.start)} to {rfc3339(found.end)}"
    elif stopped is not None:
        why += (
            f"; no eligible time found before {rfc3339(_moment(stopped))}: the search stopped "
            f"after {MAX_STEPS:,} turns of windows and holds"
        )
    else:
        why += f"; no eligible window in the next {horizon.days} days"
    return Decision(False, why, found, rule=rule)


MAX_STEPS = 1_000  # turns of windows and holds one decision takes at most (~40 ms)


@dataclass
class _Calendar:
    """A service's calendar, compiled for one decision: allow windows and what holds changes."""

    windows: list[_Window]
    blackouts: list[Blackout]
    holds: list[Hold]
    excepted_until: int | None  # holds before this moment do not hold (a freeze exception)

    def __post_init__(self) -> None:
        self.spans = [(_micros(h.start), _micros(h.end), h) for h in self.holds]
        self.held = _merged([(start, end) for start, end, _ in self.spans])
        self.dark = [_compile(b) for b in self.blackouts]

    def eligible(
        self, at: int, *, floor: int | None, upper: int
    ) -> tuple[Interval | None, int | None]:
        """The first stretch ending after `at`, inside a window (if any), after `floor`, outside
        every hold, before `upper`; or (None, where the search stopped) after MAX_STEPS."""
        moment = max(at, floor) if floor is not None else at
        steps = 0
        while steps < MAX_STEPS:
            run = _joined(self.windows, moment, upper) if self.windows else (moment, upper)
            if run is None or run[0] >= upper:
                return None, None
            low = max(run[0], floor) if floor is not None else run[0]
            high = min(run[1], upper)
            while low < high and steps < MAX_STEPS:
                steps += 1
                held = self.held_after(low, upper)
                if held is not None and held[0] <= low:
                    low = held[1]  # held at `low`: past the hold
                    continue
                end = high if held is None else min(high, held[0])
                if end > at:
                    return Interval(_moment(low), _moment(end)), None
                low = end
            moment = max(high, low)
            if moment >= upper:
                return None, None
        return None, moment

    def held_after(self, moment: int, upper: int) -> tuple[int, int] | None:
        """The first stretch in which changes are held that ends after `moment`: blackouts and
        holds joined (a freeze exception lifts those before its expiry)."""
        if self.excepted_until is not None:
            moment = max(moment, self.excepted_until)
        found = self._next_hold(moment, upper)
        if found is None:
            return None
        start, end = found
        for _ in range(MAX_CHAIN):
            following = self._next_hold(end, upper)
            if following is None or following[0] > end or end >= upper:
                break
            end = following[1]
        if self.excepted_until is not None:
            start = max(start, self.excepted_until)
        return start, end

    def _next_hold(self, moment: int, upper: int) -> tuple[int, int] | None:
        """The first blackout run or hold ending after `moment` (the earliest to start)."""
        found = []
        if self.dark:
            run = _joined(self.dark, moment, upper)
            if run is not None:
                found.append(run)
        at = bisect_right(self.held, (moment, moment))
        for start, end in self.held[max(0, at - 1) : at + 1]:
            if end > moment:
                found.append((start, end))
                break
        return min(found) if found else None

    def held_at(self, moment: int, upper: int) -> tuple[str, str, int] | None:
        """What holds changes at `moment`, exception or not: (rule, what, until)."""
        covering = [
            (h.rule != "freeze", end, h) for start, end, h in self.spans if start <= moment < end
        ]
        if covering:  # freezes first, then calendar events
            _, end, hold = min(covering, key=lambda c: c[0])
            return hold.rule, hold.what, end
        for blackout, dark in zip(self.blackouts, self.dark, strict=True):
            run = _run_after(dark, moment, upper, dark.local_ordinal(upper) + 1)
            if run is not None and run[0] <= moment < run[1]:
                what = (
                    f"{blackout.reason} ({blackout.schedule} {blackout.time_zone}, "
                    f"{blackout.duration})"
                )
                return "blackout", what, run[1]
        return None


def _allowed(
    found: Interval,
    calendar: _Calendar,
    *,
    held: tuple[str, str, int] | None,
    exception: FreezeException | None,
    emergency: bool,
    upper: datetime,
) -> Decision:
    if emergency:
        return Decision(
            True,
            "emergency change: maintenance windows, blackouts, freezes and calendars do not apply",
            found,
            rule="emergency",
        )
    if held is not None and exception is not None:
        rule, what, _ = held
        return Decision(
            True,
            f"freeze exception until {rfc3339(exception.expires)} ({exception.reason}) lifts the "
            f"{rule} ({what}); may start until {rfc3339(found.end)}",
            found,
            rule="exception",
        )
    if calendar.windows:
        return Decision(
            True, f"inside a maintenance window until {rfc3339(found.end)}", found, rule="window"
        )
    why = (
        "the service has no maintenance windows: changes may start outside a freeze, blackout "
        "or calendar event"
    )
    if found.end < upper:
        why += f" (the next holds changes from {rfc3339(found.end)})"
    return Decision(True, why, found, rule="no-windows")


def _why_not(
    at: datetime,
    calendar: _Calendar,
    held: tuple[str, str, int] | None,
    *,
    windows: bool,
    not_before: datetime | None,
) -> tuple[str, str]:
    """The rule that holds a change at `at`, and its reason (before the next eligible time)."""
    if held is not None:
        rule, what, until = held
        late = ""
        if calendar.excepted_until is not None and calendar.excepted_until <= _micros(at):
            late = " (the change's freeze exception has expired)"
        if rule == "freeze":
            return rule, f"frozen until {rfc3339(_moment(until))}: {what}{late}"
        if rule == "blackout":
            return rule, f"in a blackout until {rfc3339(_moment(until))}: {what}{late}"
        return rule, f"held by {what} until {rfc3339(_moment(until))}{late}"
    if not_before and at < _utc(not_before):
        return "schedule.notBefore", f"waiting for schedule.notBefore ({rfc3339(not_before)})"
    if windows:
        return "window", "outside the service's maintenance windows"
    return "none", "no eligible time"


def _merged(intervals: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Intervals sorted, overlapping ones joined."""
    joined: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined


def _micros(moment: datetime) -> int:
    return (_utc(moment) - _EPOCH) // _US


def _moment(micros: int) -> datetime:
    return _EPOCH + micros * _US


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
