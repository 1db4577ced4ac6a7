"""Shared calendars: iCalendar files as Outlook and Google export them, each event a freeze."""

from datetime import UTC, datetime, timedelta

import pytest

from opsledger.domain.calendars import CalendarError, parse
from opsledger.domain.validate import validate_tree
from opsledger.domain.windows import decide

BERLIN_ZONE = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
"""


def ics(*events: str) -> str:
    body = "".join(f"BEGIN:VEVENT\n{e.strip()}\nEND:VEVENT\n" for e in events)
    text = f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n{BERLIN_ZONE}{body}END:VCALENDAR\n"
    return text.replace("\n", "\r\n")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def spans(text: str, zone: str = "Europe/Berlin", since: str = "2026-12-01T00:00:00Z") -> list:
    start = utc(since)
    holds = parse("holidays", text, zone).holds(start, start + timedelta(days=400))
    return [
        (h.start.astimezone(UTC).isoformat(), h.end.astimezone(UTC).isoformat(), h.what)
        for h in holds
    ]


XMAS = """UID:xmas@example
SUMMARY:Christmas
DTSTART;VALUE=DATE:20201224
DTEND;VALUE=DATE:20201227
RRULE:FREQ=YEARLY
EXDATE;VALUE=DATE:20271224"""


def test_an_all_day_yearly_event_is_read_in_the_reference_s_zone_and_exdate_skips_a_year() -> None:
    assert spans(ics(XMAS)) == [
        ("2026-12-23T23:00:00+00:00", "2026-12-26T23:00:00+00:00", "calendar holidays: Christmas")
    ]  # 2027 excluded by EXDATE
    utc_read = spans(ics(XMAS), zone="UTC")
    assert utc_read[0][:2] == ("2026-12-24T00:00:00+00:00", "2026-12-27T00:00:00+00:00")


def test_a_timed_recurrence_keeps_its_wall_time_across_dst_and_an_override_moves_one() -> None:
    review = """UID:review@example
SUMMARY:Release review
DTSTART;TZID=Europe/Berlin:20260105T090000
DTEND;TZID=Europe/Berlin:20260105T120000
RRULE:FREQ=MONTHLY;BYDAY=1MO;UNTIL=20270430T000000Z"""
    moved = """UID:review@example
RECURRENCE-ID;TZID=Europe/Berlin:20270104T090000
SUMMARY:Release review (moved)
DTSTART;TZID=Europe/Berlin:20270105T140000
DTEND;TZID=Europe/Berlin:20270105T170000"""
    got = spans(ics(review, moved))
    assert [g[0] for g in got] == [
        "2026-12-07T08:00:00+00:00",  # 09:00 CET
        "2027-01-05T13:00:00+00:00",  # the January one, moved to Tuesday 14:00
        "2027-02-01T08:00:00+00:00",
        "2027-03-01T08:00:00+00:00",
        "2027-04-05T07:00:00+00:00",  # 09:00 CEST
    ]
    assert got[1][2] == "calendar holidays: Release review (moved)"


def test_a_cancelled_occurrence_holds_nothing() -> None:
    weekly = """UID:w@example
SUMMARY:Weekly batch
DTSTART:20261201T220000Z
DURATION:PT2H
RRULE:FREQ=WEEKLY;COUNT=3"""
    cancelled = """UID:w@example
RECURRENCE-ID:20261208T220000Z
STATUS:CANCELLED
SUMMARY:Weekly batch"""
    assert [g[0] for g in spans(ics(weekly, cancelled))] == [
        "2026-12-01T22:00:00+00:00",
        "2026-12-15T22:00:00+00:00",
    ]


@pytest.mark.parametrize(
    ("zone", "tzid", "day", "opens"),
    [
        # 02:30 does not exist that night: the event starts when the clock reaches it
        ("Europe/Berlin", "Europe/Berlin", "20270328", "2027-03-28T01:30:00+00:00"),
        ("America/New_York", "America/New_York", "20270314", "2027-03-14T07:30:00+00:00"),
    ],
)
def test_an_event_in_the_skipped_hour_starts_when_the_clock_reaches_it(
    zone: str, tzid: str, day: str, opens: str
) -> None:
    event = f"""UID:gap@example
SUMMARY:In the gap
DTSTART;TZID={tzid}:{day}T023000
DTEND;TZID={tzid}:{day}T043000"""
    [(start, _, _)] = spans(ics(event), zone=zone, since="2027-03-01T00:00:00Z")
    assert start == opens


def test_a_calendar_event_holds_a_change_and_is_named() -> None:
    holds = parse("holidays", ics(XMAS), "Europe/Berlin").holds(
        utc("2026-12-01T00:00:00Z"), utc("2027-12-31T00:00:00Z")
    )
    decision = decide(utc("2026-12-24T10:00:00Z"), holds=holds)
    assert (decision.allowed, decision.rule) == (False, "calendar")
    assert decision.reason.startswith(
        "held by calendar holidays: Christmas until 2026-12-26T23:00:00Z"
    )


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ("UID:a\nSUMMARY:No end\nDTSTART:20261201T100000Z", "event 'No end' has neither DTEND"),
        (
            "UID:b\nSUMMARY:Often\nDTSTART:20261201T100000Z\nDURATION:PT1M\nRRULE:FREQ=MINUTELY",
            "event 'Often' repeats minutely: a calendar event repeats at most daily",
        ),
        (
            "UID:c\nSUMMARY:Backwards\nDTSTART:20261201T100000Z\nDTEND:20261201T090000Z",
            "event 'Backwards' ends before it starts",
        ),
    ],
)
def test_a_calendar_that_cannot_be_used_is_refused_naming_the_file_and_event(
    event: str, says: str
) -> None:
    with pytest.raises(CalendarError, match=r"calendars/holidays\.ics: ") as caught:
        parse("holidays", ics(event))
    assert says in str(caught.value)


def test_cmdb_validate_names_the_calendar_and_its_problem() -> None:
    dense = ics(
        *(
            f"UID:d{i}\nSUMMARY:Daily {i}\nDTSTART:20260101T0{i}0000Z\nDURATION:PT5M\n"
            "RRULE:FREQ=DAILY"
            for i in range(6)
        )
    )
    problems = validate_tree(
        iter(
            [
                ("calendars/holidays.ics", ics(XMAS)),
                ("calendars/dense.ics", dense),
                ("calendars/broken.ics", "BEGIN:VCALENDAR\r\nnot a calendar"),
            ]
        )
    )
    found = {p.path: p.message for p in problems}
    assert set(found) == {"calendars/dense.ics", "calendars/broken.ics"}
    assert "more than 2,000 occurrences" in found["calendars/dense.ics"]
    assert "not an iCalendar file" in found["calendars/broken.ics"]
