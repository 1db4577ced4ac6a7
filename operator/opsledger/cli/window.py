"""opsledger window: may a change start now? opsledger calendar: what is coming. The change
calendar of a ServiceLevel manifest (and the shared calendars it names, from a CMDB checkout)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opsledger.cli.common import moment, one_manifest, print_json, validated

# opsledger's domain and models load inside the function: see cli/__init__.py.


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    window = sub.add_parser(
        "window", help="may a change start now (or --at)? windows and freezes of a ServiceLevel"
    )
    window.add_argument("file", type=Path, help="a ServiceLevel manifest (YAML)")
    window.add_argument("--at", help="the moment to ask about (RFC 3339; default: now)")
    window.add_argument("--emergency", action="store_true", help="answer for an emergency change")
    window.add_argument(
        "--calendars",
        type=Path,
        help="the calendars/ folder of a CMDB checkout, for the ServiceLevel's shared calendars",
    )
    window.add_argument("-o", "--output", choices=["text", "json"], default="text")
    window.set_defaults(func=_window)
    calendar = sub.add_parser(
        "calendar",
        help="what is coming on a ServiceLevel's change calendar: windows, blackouts, freezes, "
        "calendar events (table, JSON or an iCalendar feed)",
    )
    calendar.add_argument("file", type=Path, help="a ServiceLevel manifest (YAML)")
    calendar.add_argument("--since", help="the period's start (RFC 3339; default: now)")
    calendar.add_argument("--days", type=int, default=14, help="the period's length (default 14)")
    calendar.add_argument("--calendars", type=Path, help="the calendars/ folder of a CMDB checkout")
    calendar.add_argument("-o", "--output", choices=["table", "json", "ics"], default="table")
    calendar.set_defaults(func=_calendar)


def _window(args: argparse.Namespace) -> int:
    from opsledger.domain.times import rfc3339  # noqa: PLC0415
    from opsledger.domain.windows import HORIZON, decide  # noqa: PLC0415
    from opsledger.models.servicelevel import ServiceLevelSpec  # noqa: PLC0415

    manifest = one_manifest(args.file, "ServiceLevel")
    spec = validated(ServiceLevelSpec, manifest, args.file)
    at = moment(args.at) if args.at else datetime.now(UTC)
    holds = _holds(args, spec, at - timedelta(days=1), at + HORIZON + timedelta(days=1))
    decision = decide(
        at,
        windows=spec.maintenance_windows,
        freezes=spec.freezes,
        blackouts=spec.blackouts,
        holds=holds,
        emergency=args.emergency,
    )
    if args.output == "json":
        print_json(decision.to_json())
        return 0
    verdict = "allowed" if decision.allowed else "not allowed"
    print(f"{verdict} at {rfc3339(at)} ({decision.rule}): {decision.reason}")
    if decision.next:
        label = "window" if decision.allowed else "next"
        print(f"{label}: {rfc3339(decision.next.start)} to {rfc3339(decision.next.end)}")
    return 0


def _holds(args: argparse.Namespace, spec: Any, since: datetime, until: datetime) -> list[Any]:
    """The events of the shared calendars the ServiceLevel names, read from --calendars."""
    from opsledger.domain.calendars import CalendarError, parse  # noqa: PLC0415

    holds = []
    for ref in spec.calendars:
        if args.calendars is None:
            raise SystemExit(
                f"{args.file}: the ServiceLevel names calendar {ref.name}: pass --calendars "
                "with the calendars/ folder of a CMDB checkout"
            )
        path = args.calendars / f"{ref.name}.ics"
        try:
            holds += parse(ref.name, path.read_text(), ref.time_zone).holds(since, until)
        except (OSError, CalendarError) as exc:
            raise SystemExit(f"{path}: {exc}") from exc
    return holds


def _calendar(args: argparse.Namespace) -> int:
    import sys  # noqa: PLC0415

    from opsledger.domain.calendar_feed import entries, ics  # noqa: PLC0415
    from opsledger.models.servicelevel import ServiceLevelSpec  # noqa: PLC0415

    manifest = one_manifest(args.file, "ServiceLevel")
    spec = validated(ServiceLevelSpec, manifest, args.file)
    since = moment(args.since) if args.since else datetime.now(UTC)
    until = since + timedelta(days=args.days)
    rows = entries(
        spec.service, spec, _holds(args, spec, since, until), (), since=since, until=until
    )
    if args.output == "ics":
        sys.stdout.buffer.write(ics(spec.service, rows, datetime.now(UTC)))
        return 0
    if args.output == "json":
        print_json([r.to_json() for r in rows])
        return 0
    print(f"{'START':<21}{'END':<21}{'KIND':<10}WHAT")
    for row in rows:
        print(f"{row.to_json()['start']:<21}{row.to_json()['end']:<21}{row.kind:<10}{row.what}")
    return 0
