"""Shared calendars: iCalendar files (RFC 5545) in the CMDB repository's `calendars/`, each event
a freeze of every service whose ServiceLevel lists the calendar.

The files are what Outlook and Google Calendar export; `icalendar` reads them (properties, time
zones, dates) and `dateutil.rrule` expands their recurrences (RRULE, RDATE, EXDATE), as
RFC 5545 says. An occurrence moved by a RECURRENCE-ID override is replaced by the override;
cancelled events and occurrences do not hold changes. All-day and floating events are read in
the zone the ServiceLevel's reference gives (UTC by default); a time in the hour clocks skip is
taken as the clock reaches it, as for maintenance windows.

A calendar's cost is bounded before it is used: events repeating more often than daily are
refused, and so is a calendar with more than MAX_OCCURRENCES occurrences in the coming year
(`opsledger cmdb validate` says which file and event).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from dateutil.rrule import rruleset, rrulestr

from opsledger.domain.windows import Hold

CALENDAR_DIR = "calendars"
MAX_OCCURRENCES = 2_000  # per calendar within the year searched
TOO_OFTEN = frozenset({"SECONDLY", "MINUTELY", "HOURLY"})
YEAR = timedelta(days=366)


class CalendarError(ValueError):
    """A calendar that cannot be used; the message names the file and the event."""


def calendar_path(name: str) -> str:
    return f"{CALENDAR_DIR}/{name}.ics"


@dataclass(frozen=True)
class Event:
    """One event of a calendar, ready to expand: its first start, length, and recurrence."""

    uid: str
    summary: str
    start: datetime  # aware
    length: timedelta
    rule: str | None  # the RRULE, as text
    extra: tuple[datetime, ...]  # RDATE
    excluded: frozenset[datetime]  # EXDATE, and occurrences an override replaces (UTC)


@dataclass(frozen=True)
class Calendar:
    name: str
    events: tuple[Event, ...]

    def holds(self, since: datetime, until: datetime) -> list[Hold]:
        """The occurrences that overlap [since, until), as holds, in order of their start."""
        found = []
        for event in self.events:
            for start in _starts(event, since - event.length, until, self.name):
                end = start + event.length
                if end > since:
                    found.append(
                        Hold(start, end, "calendar", f"calendar {self.name}: {event.summary}")
                    )
                if len(found) > MAX_OCCURRENCES:
                    raise CalendarError(
                        f"{calendar_path(self.name)}: more than {MAX_OCCURRENCES:,} occurrences "
                        f"between {since:%Y-%m-%d} and {until:%Y-%m-%d} (event "
                        f"{event.summary!r}); a calendar of freezes needs far fewer"
                    )
        return sorted(found, key=lambda h: (h.start, h.end))


@dataclass(frozen=True)
class Loaded:
    """One calendar as an operator last read it: its occurrences from `since`, or why it cannot
    be used."""

    digest: str
    zone: str
    since: datetime
    holds: tuple[Hold, ...]
    error: str | None = None


def parse(name: str, text: str, zone: str = "UTC") -> Calendar:
    """The calendar in `text` (the file calendars/<name>.ics), or CalendarError saying what is
    wrong and where. `zone` reads all-day and floating times."""
    path = calendar_path(name)
    try:
        parsed = icalendar.Calendar.from_ical(text)
    except (ValueError, KeyError, IndexError) as exc:
        raise CalendarError(f"{path}: not an iCalendar file (RFC 5545): {exc}") from exc
    if not isinstance(parsed, icalendar.Calendar):
        raise CalendarError(f"{path}: not an iCalendar file (RFC 5545): no VCALENDAR")
    local = ZoneInfo(zone)
    events: list[Event] = []
    overrides: dict[str, set[datetime]] = {}
    for component in parsed.walk("VEVENT"):
        what = _describe(path, component)
        if str(component.get("STATUS", "")).upper() == "CANCELLED":
            if component.get("RECURRENCE-ID") is not None:
                moved = _moment(component.decoded("RECURRENCE-ID"), local, what)
                overrides.setdefault(str(component.get("UID", "")), set()).add(moved)
            continue
        event = _event(component, local, what)
        if component.get("RECURRENCE-ID") is not None:
            moved = _moment(component.decoded("RECURRENCE-ID"), local, what)
            overrides.setdefault(event.uid, set()).add(moved)
            event = Event(
                event.uid, event.summary, event.start, event.length, None, (), frozenset()
            )
        events.append(event)
    calendar = Calendar(
        name,
        tuple(
            Event(
                e.uid,
                e.summary,
                e.start,
                e.length,
                e.rule,
                e.extra,
                e.excluded | frozenset(overrides.get(e.uid, ()) if e.rule or e.extra else ()),
            )
            for e in events
        ),
    )
    now = datetime.now(UTC)
    calendar.holds(now, now + YEAR)  # refuses a calendar too dense to use
    return calendar


def _describe(path: str, component: Any) -> str:
    summary = str(component.get("SUMMARY") or "")
    uid = str(component.get("UID") or "")
    return f"{path}: event {summary or uid or '(no summary)'!r}"


def _event(component: Any, local: ZoneInfo, what: str) -> Event:
    if component.get("DTSTART") is None:
        raise CalendarError(f"{what} has no DTSTART")
    raw_start = component.decoded("DTSTART")
    start = _moment(raw_start, local, what)
    if component.get("DTEND") is not None:
        end = _moment(component.decoded("DTEND"), local, what)
    elif component.get("DURATION") is not None:
        end = start + component.decoded("DURATION")
    elif isinstance(raw_start, date) and not isinstance(raw_start, datetime):
        end = start + timedelta(days=1)  # an all-day event of one day (RFC 5545 3.6.1)
    else:
        raise CalendarError(f"{what} has neither DTEND nor DURATION: a freeze needs an end")
    if end <= start:
        raise CalendarError(f"{what} ends before it starts: fix DTEND (or DURATION)")
    rule = None
    if component.get("RRULE") is not None:
        recurrence = component.get("RRULE")
        frequency = str((recurrence.get("FREQ") or [""])[0]).upper()
        if frequency in TOO_OFTEN:
            raise CalendarError(
                f"{what} repeats {frequency.lower()}: a calendar event repeats at most daily "
                "(use a blackout on the ServiceLevel for anything finer)"
            )
        if recurrence.get("UNTIL"):
            # UNTIL in UTC, as dateutil wants beside a zoned start (a DATE: its whole day)
            until = recurrence["UNTIL"][0]
            last = _moment(until, local, what)
            if not isinstance(until, datetime):
                last += timedelta(days=1) - timedelta(seconds=1)
            recurrence = icalendar.vRecur({**recurrence, "UNTIL": [last.astimezone(UTC)]})
        rule = recurrence.to_ical().decode()
    return Event(
        uid=str(component.get("UID") or ""),
        summary=str(component.get("SUMMARY") or "(no summary)"),
        start=start,
        length=end - start,
        rule=rule,
        extra=tuple(_dates(component.get("RDATE"), local, what)),
        excluded=frozenset(_dates(component.get("EXDATE"), local, what)),
    )


def _dates(value: Any, local: ZoneInfo, what: str) -> Iterator[datetime]:
    """The moments of an RDATE or EXDATE property (one, or a list of them)."""
    for prop in value if isinstance(value, list) else [value] if value is not None else []:
        for item in prop.dts:
            moment = item.dt
            if isinstance(moment, tuple):  # a PERIOD: its start
                moment = moment[0]
            yield _moment(moment, local, what)


def _moment(value: Any, local: tzinfo, what: str) -> datetime:
    """A DATE or DATE-TIME value as an aware moment: dates at midnight, floating times in the
    reference's zone."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=local)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=local)
    raise CalendarError(f"{what} has a time that is neither a DATE nor a DATE-TIME: {value!r}")


def _starts(event: Event, since: datetime, until: datetime, name: str) -> Iterable[datetime]:
    """The event's starts in [since, until), excluded ones left out."""
    if event.rule is None and not event.extra:
        return [event.start] if since <= event.start < until else []
    rules = rruleset()
    if event.rule is not None:
        try:
            rules.rrule(rrulestr(event.rule, dtstart=event.start))  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            raise CalendarError(
                f"{calendar_path(name)}: event {event.summary!r}: RRULE {event.rule!r} cannot "
                f"be read: {exc}"
            ) from exc
    for extra in event.extra:
        rules.rdate(extra)
    excluded = {e.astimezone(UTC) for e in event.excluded}
    return [
        start
        for start in rules.between(since, until, inc=True)
        if start.astimezone(UTC) not in excluded and start < until
    ]
