"""What is coming on a service's change calendar: maintenance windows, blackouts, freezes,
shared-calendar events and scheduled changes, for a period, as rows or an iCalendar feed people
subscribe to from their own calendar."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

import icalendar

from opsledger.domain.times import parse_time, rfc3339
from opsledger.domain.windows import Hold, Interval, openings
from opsledger.models.servicelevel import ServiceLevelSpec

MAX_PER_RULE = 500  # openings listed per window or blackout (a minutely one would be endless)


@dataclass(frozen=True, order=True)
class Entry:
    start: datetime
    end: datetime
    kind: str  # window, blackout, freeze, calendar, change
    what: str

    def to_json(self) -> dict[str, str]:
        return {
            "start": rfc3339(self.start),
            "end": rfc3339(self.end),
            "kind": self.kind,
            "what": self.what,
        }


def entries(
    service: str,
    level: ServiceLevelSpec,
    holds: Sequence[Hold],
    changes: Iterable[tuple[str, str, object, object, object]],
    *,
    since: datetime,
    until: datetime,
) -> list[Entry]:
    """Everything on the calendar that overlaps [since, until), in order."""
    found: list[Entry] = []
    for window in level.maintenance_windows:
        what = f"maintenance window of {service} ({window.schedule} {window.time_zone})"
        found += _recurring(openings(window, since), until, "window", what)
    for blackout in level.blackouts:
        what = f"blackout of {service}: {blackout.reason}"
        found += _recurring(openings(blackout, since), until, "blackout", what)
    found += [
        Entry(f.start, f.end, "freeze", f"freeze of {service}: {f.reason}")
        for f in level.freezes
        if f.end > since and f.start < until
    ]
    found += [
        Entry(h.start, h.end, "calendar", h.what)
        for h in holds
        if h.end > since and h.start < until
    ]
    for name, summary, start, end, phase in changes:
        begins, ends = parse_time(start), parse_time(end)
        if begins is None or ends is None or ends <= since or begins >= until:
            continue
        found.append(Entry(begins, ends, "change", f"change {name} ({phase}): {summary}"))
    return sorted(found)


def _recurring(found: Iterable[Interval], until: datetime, kind: str, what: str) -> list[Entry]:
    result = []
    for interval in islice(found, MAX_PER_RULE):
        if interval.start >= until:
            break
        result.append(Entry(interval.start, interval.end, kind, what))
    return result


def ics(name: str, rows: Sequence[Entry], now: datetime) -> bytes:
    """The rows as an iCalendar feed (RFC 5545), one event each, with stable UIDs."""
    feed = icalendar.Calendar()
    feed.add("prodid", "-//OpsLedger//Change calendar//EN")
    feed.add("version", "2.0")
    feed.add("x-wr-calname", f"Change calendar: {name}")
    for row in rows:
        event = icalendar.Event()
        digest = hashlib.sha256(f"{row.kind}|{row.what}|{rfc3339(row.start)}".encode()).hexdigest()
        event.add("uid", f"{digest[:32]}@opsledger")
        event.add("dtstamp", now)
        event.add("dtstart", row.start)
        event.add("dtend", row.end)
        event.add("summary", row.what)
        event.add("categories", [row.kind])
        if row.kind in ("blackout", "freeze", "calendar"):
            event.add("transp", "OPAQUE")
        feed.add_component(event)
    return bytes(feed.to_ical())
