"""When a change may start: maintenance windows, freezes and the change's own schedule.

Argo CD's sync-window semantics. When a service has maintenance windows, changes start only
inside one; without any, they may start at any time. A freeze always wins over a window. The
change's `schedule.notBefore/notAfter` narrows whatever is left. Emergency changes ignore windows
and freezes, never the schedule.

Cron schedules are read as wall-clock time in the window's IANA zone, so "0 22 * * 6" in
Europe/Berlin opens at 22:00 Berlin time in summer and in winter. A wall-clock time that does not
exist (the hour skipped when clocks go forward) opens when the clock reaches it, i.e. shifted
forward by the skipped hour; a wall-clock time that happens twice (the hour repeated when clocks
go back) opens once, at its first occurrence. Durations are elapsed time: a 4h window opened at
01:00 on the night clocks go back closes four real hours later, at 04:00 local time.

Every function takes the time as a parameter; nothing here reads a clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from opsledger.domain.durations import go_duration
from opsledger.domain.times import rfc3339
from opsledger.models.servicelevel import Freeze, MaintenanceWindow

HORIZON = timedelta(days=365)  # how far ahead the next eligible window is searched
MAX_OCCURRENCES = 50_000  # windows looked at before giving up (a minutely cron in a long freeze)
_DST_MARGIN = timedelta(hours=3)  # cron is iterated in local time: start early enough


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

    def to_json(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "next": {"start": rfc3339(self.next.start), "end": rfc3339(self.next.end)}
            if self.next
            else None,
        }


def openings(window: MaintenanceWindow, since: datetime) -> Iterator[Interval]:
    """The openings of `window` that end after `since`, in order of their start."""
    zone = ZoneInfo(window.time_zone)
    duration = go_duration(window.duration)
    local_start = (since - duration - _DST_MARGIN).astimezone(zone).replace(tzinfo=None)
    schedule = croniter(window.schedule, local_start)
    while True:
        wall: datetime = schedule.get_next(datetime)
        # fold=0: a skipped wall time maps past the gap, a repeated one to its first occurrence.
        start = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
        if start + duration > since:
            yield Interval(start, start + duration)


def merged(intervals: Iterable[Interval], until: datetime) -> Iterator[Interval]:
    """Overlapping or touching intervals (sorted by start) joined into one, up to `until`.

    Windows longer than their period (a 30h window every day) overlap forever: the joined
    interval is cut at `until` so the iteration ends.
    """
    current: Interval | None = None
    for count, interval in enumerate(intervals):
        if current is None:
            current = interval
        elif interval.start <= current.end:
            current = Interval(current.start, max(current.end, interval.end))
        else:
            yield current
            current = interval
        if current.end >= until or current.start >= until or count >= MAX_OCCURRENCES:
            break
    if current is not None:
        yield current


def subtract(interval: Interval, freezes: Sequence[Freeze]) -> list[Interval]:
    """What is left of `interval` outside every freeze."""
    pieces = [interval]
    for freeze in freezes:
        start, end = _utc(freeze.start), _utc(freeze.end)
        next_pieces = []
        for piece in pieces:
            if end <= piece.start or start >= piece.end:
                next_pieces.append(piece)
                continue
            if start > piece.start:
                next_pieces.append(Interval(piece.start, start))
            if end < piece.end:
                next_pieces.append(Interval(end, piece.end))
        pieces = next_pieces
    return pieces


def decide(
    at: datetime,
    *,
    windows: Sequence[MaintenanceWindow] = (),
    freezes: Sequence[Freeze] = (),
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    emergency: bool = False,
    horizon: timedelta = HORIZON,
) -> Decision:
    """May a change start at `at`? With the window it is in, or the next eligible one."""
    at = _utc(at)
    floor = _utc(not_before) if not_before else None
    since = max(at, floor) if floor else at
    upper = min(at + horizon, _utc(not_after)) if not_after else at + horizon
    if not_after and _utc(not_after) <= at:
        return Decision(
            False,
            f"schedule.notAfter ({rfc3339(not_after)}) has passed: the change can no longer "
            "start; cancel it or move notAfter",
            None,
        )
    use_windows = bool(windows) and not emergency
    active_freezes = () if emergency else freezes
    if use_windows:
        streams = [openings(w, since) for w in windows]
        candidates: Iterable[Interval] = merged(heapq.merge(*streams), upper)
    else:
        candidates = [Interval(since, upper)]
    found: Interval | None = None
    for candidate in candidates:
        if candidate.start >= upper:
            break
        start = max(candidate.start, floor) if floor else candidate.start
        clipped = Interval(start, min(candidate.end, upper))
        pieces = [p for p in subtract(clipped, active_freezes) if p.end > at and p.start < p.end]
        if pieces:
            found = pieces[0]
            break
    if found is not None and found.start <= at:
        return Decision(True, _why_allowed(found, use_windows, emergency), found)
    why = _why_not(
        at,
        found=found,
        use_windows=use_windows,
        freezes=active_freezes,
        not_before=not_before,
        horizon=horizon,
    )
    return Decision(False, why, found)


def _why_allowed(window: Interval, use_windows: bool, emergency: bool) -> str:
    if emergency:
        return "emergency change: maintenance windows and freezes do not apply"
    if use_windows:
        return f"inside a maintenance window until {rfc3339(window.end)}"
    return "the service has no maintenance windows: changes may start outside a freeze"


def _why_not(
    at: datetime,
    *,
    found: Interval | None,
    use_windows: bool,
    freezes: Sequence[Freeze],
    not_before: datetime | None,
    horizon: timedelta,
) -> str:
    frozen = next((f for f in freezes if _utc(f.start) <= at < _utc(f.end)), None)
    if frozen is not None:
        why = f"frozen until {rfc3339(frozen.end)}: {frozen.reason}"
    elif not_before and at < _utc(not_before):
        why = f"waiting for schedule.notBefore ({rfc3339(not_before)})"
    elif use_windows:
        why = "outside the service's maintenance windows"
    else:
        why = "no eligible time"
    if found is None:
        return f"{why}; no eligible window in the next {horizon.days} days"
    return f"{why}; next eligible window {rfc3339(found.start)} to {rfc3339(found.end)}"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
