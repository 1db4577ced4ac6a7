"""The shared calendars the ServiceLevels name, read from the CMDB repository's protected branch.

Every replica keeps them (the start gate, the webhook's denials and the window endpoint all need
them): a loop fetches the protected branch, reads `calendars/<name>.ics` for every name a
ServiceLevel lists, parses a file only when its text changed (in a thread), and keeps its
occurrences of the coming year as holds. A calendar that cannot be read holds every change of
the services that name it, saying why: a freeze nobody can read is not no freeze.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import datetime, timedelta

from pydantic import ValidationError

from opsledger.domain import calendar_feed
from opsledger.domain.calendars import CalendarError, Loaded, calendar_path, parse
from opsledger.domain.change_gates import HOLDS
from opsledger.domain.times import parse_time
from opsledger.domain.validation import describe
from opsledger.domain.views import CHANGE_CALENDAR, SERVICE_LEVELS
from opsledger.domain.windows import HORIZON, Hold, decide
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.services.context import Context
from opsledger.services.records import call

log = logging.getLogger("opsledger.calendars")
SPAN = HORIZON + timedelta(days=2)  # how far ahead occurrences are kept
RENEW = timedelta(hours=6)  # occurrences are expanded again this often


def referenced(ctx: Context) -> dict[str, str]:
    """The calendars the ServiceLevels name, each with the zone it is read in (the first
    reference's)."""
    found: dict[str, str] = {}
    for entries in ctx.views[SERVICE_LEVELS].values():
        for level in entries:
            for ref in (level.get("spec") or {}).get("calendars") or []:
                if ref.get("name"):
                    found.setdefault(str(ref["name"]), str(ref.get("timeZone") or "UTC"))
    return found


async def keep(ctx: Context) -> None:
    """Read the calendars (when there is a CMDB), then publish which services are held."""
    if ctx.cmdb is not None:
        await refresh(ctx)
    publish(ctx)


def publish(ctx: Context) -> None:
    """opsledger_change_freeze_active per service: 1 while a freeze, blackout or calendar
    event holds its changes."""
    now = ctx.clock()
    active: dict[tuple[str, str], bool] = {}
    for (namespace, service), entries in ctx.views[SERVICE_LEVELS].items():
        for level in entries:
            try:
                sl = ServiceLevelSpec.model_validate(level.get("spec") or {})
            except ValidationError:
                continue  # its own status says why
            decision = decide(
                now,
                freezes=sl.freezes,
                blackouts=sl.blackouts,
                holds=holds(ctx, [c.name for c in sl.calendars], now),
            )
            active[(str(namespace), str(service))] = decision.rule in HOLDS
    ctx.metrics.set_freezes(active)


async def refresh(ctx: Context) -> None:
    """Read every referenced calendar from the protected branch, parsing what changed."""
    if ctx.cmdb is None:
        return
    wanted = referenced(ctx)
    if not wanted:
        ctx.calendars.clear()
        return
    await call(ctx.cmdb.refresh)
    now = ctx.clock()
    for name, zone in wanted.items():
        text = await call(ctx.cmdb.read_at, f"origin/{ctx.cmdb.branch}", calendar_path(name))
        digest = hashlib.sha256((text or "").encode()).hexdigest()
        kept = ctx.calendars.get(name)
        fresh = kept and kept.digest == digest and kept.zone == zone and now - kept.since < RENEW
        if fresh:
            continue
        ctx.calendars[name] = await asyncio.to_thread(_load, name, text, zone, digest, now)
        loaded = ctx.calendars[name]
        if loaded.error:
            log.warning("%s", loaded.error)
        else:
            log.info("calendar %s: %d occurrences in the coming year", name, len(loaded.holds))
    for name in set(ctx.calendars) - set(wanted):
        del ctx.calendars[name]


def _load(name: str, text: str | None, zone: str, digest: str, now: datetime) -> Loaded:
    since = now - timedelta(days=1)
    if text is None:
        error = (
            f"{calendar_path(name)} is not on the CMDB repository's protected branch: add it "
            "by pull request, or drop it from the ServiceLevel's calendars"
        )
        return Loaded(digest, zone, since, (), error)
    try:
        holds = parse(name, text, zone).holds(since, since + SPAN)
    except CalendarError as exc:
        return Loaded(digest, zone, since, (), str(exc))
    return Loaded(digest, zone, since, tuple(holds))


def holds(ctx: Context, names: list[str], now: datetime) -> list[Hold]:
    """The holds of these calendars from `now` on. A calendar not read yet, or unreadable, holds
    everything until it is (a change never starts on a calendar nobody could read)."""
    found: list[Hold] = []
    for name in names:
        loaded = ctx.calendars.get(name)
        if loaded is None or loaded.error is not None:
            why = loaded.error if loaded is not None else "not read from the CMDB yet"
            found.append(Hold(now, now + SPAN, "calendar", f"calendar {name} ({why})"))
            continue
        found.extend(h for h in loaded.holds if h.end > now)
    return found


def _asked(
    ctx: Context, namespace: str, service: str
) -> ServiceLevelSpec | tuple[dict[str, object], int]:
    """The ServiceLevel a request names, or the error to answer and its HTTP status."""
    found = list(ctx.views[SERVICE_LEVELS].get((namespace, service), ()))
    if not found:
        return {"error": f"no ServiceLevel with spec.service={service!r} in {namespace!r}"}, 404
    try:
        return ServiceLevelSpec.model_validate(found[0].get("spec") or {})
    except ValidationError as exc:
        return {"error": f"the ServiceLevel is invalid: {describe(exc)}"}, 409


def window_answer(
    ctx: Context, *, namespace: str, service: str, at: str | None = None
) -> tuple[dict[str, object], int]:
    """The window decision for a service's ServiceLevel as `opsledger window -o json` prints
    it, with the HTTP status to answer it with (400 for a bad question, 404 for no such
    ServiceLevel)."""
    if not namespace or not service:
        return {"error": "ask with ?namespace=<namespace>&service=<spec.service>"}, 400
    if len(namespace) > 253 or len(service) > 253:
        return {"error": "namespace and service are at most 253 characters"}, 400
    moment = ctx.clock()
    if at is not None:
        parsed = parse_time(at, naive=None)
        if parsed is None or parsed.tzinfo is None:
            return {
                "error": "at must be an RFC 3339 time with a zone, e.g. 2026-12-01T22:00:00Z"
            }, 400
        moment = parsed
    sl = _asked(ctx, namespace, service)
    if not isinstance(sl, ServiceLevelSpec):
        return sl
    decision = decide(
        moment,
        windows=sl.maintenance_windows,
        freezes=sl.freezes,
        blackouts=sl.blackouts,
        holds=holds(ctx, [c.name for c in sl.calendars], moment),
    )
    return decision.to_json(), 200


def feed(
    ctx: Context, *, namespace: str, service: str, days: str | None = None
) -> tuple[bytes | dict[str, object], int]:
    """The service's change calendar for the coming `days` (default 30, at most 366) as an
    iCalendar feed, with its scheduled and running changes; or an error and its HTTP status."""
    if not namespace or not service or len(namespace) > 253 or len(service) > 253:
        return {"error": "ask with ?namespace=<namespace>&service=<spec.service>"}, 400
    try:
        span = int(days) if days is not None else 30
    except ValueError:
        span = 0
    if not 1 <= span <= 366:
        return {"error": "days is a whole number from 1 to 366"}, 400
    sl = _asked(ctx, namespace, service)
    if not isinstance(sl, ServiceLevelSpec):
        return sl
    now = ctx.clock()
    until = now + timedelta(days=span)
    rows = calendar_feed.entries(
        service,
        sl,
        holds(ctx, [c.name for c in sl.calendars], now),
        ctx.views[CHANGE_CALENDAR].get((namespace, service), ()),
        since=now,
        until=until,
    )
    return calendar_feed.ics(f"{namespace}/{service}", rows, now), 200
