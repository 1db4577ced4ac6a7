"""The service desk's rules: who is asking, the forms' CSRF tokens, and what its pages show.

**Who is asking.** The desk sits behind an authenticating proxy (oauth2-proxy's convention: the
proxy signs people in and passes `X-Forwarded-User`, `X-Forwarded-Email` and
`X-Forwarded-Groups`). Those headers are believed only from the proxy's own addresses (the
allow-list); from anywhere else they are ignored, so a person who reaches the desk directly
cannot claim to be someone else. Without a trusted identity a request is anonymous, which may
read only when anonymous reading is switched on, and never writes.

**CSRF.** Every form carries a token: an HMAC, under the desk's secret, of the person and an
expiry. A POST without a valid one for the same person is refused, so another site cannot make
a signed-in person's browser report an issue in their name.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

USER_HEADER = "X-Forwarded-User"
EMAIL_HEADER = "X-Forwarded-Email"
GROUPS_HEADER = "X-Forwarded-Groups"
CSRF_LIFETIME = timedelta(hours=8)
# Groups the API server gives every authenticated user; a proxy must not hand out system ones.
AUTHENTICATED = "system:authenticated"
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")


@dataclass(frozen=True)
class Person:
    """Someone the proxy signed in: the name Kubernetes impersonation will use, and groups."""

    username: str
    email: str | None
    groups: tuple[str, ...]

    @property
    def shown(self) -> str:
        return self.email or self.username


class IdentityError(ValueError):
    """Headers that claim an identity the desk will not take (a readable reason)."""


def parse_networks(values: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The proxy allow-list, e.g. ["127.0.0.1/32", "10.0.0.0/8"]; ValueError names a bad one."""
    networks = []
    for value in values:
        text = value.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not an address or network (e.g. 10.0.0.0/8)") from exc
    return networks


def trusted(
    remote: str | None, proxies: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    """Whether a request from `remote` came through an allow-listed proxy."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in network for network in proxies)


def person_from(
    headers: Mapping[str, str],
    remote: str | None,
    proxies: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> Person | None:
    """The person the proxy's headers name, or None (anonymous): the headers count only from an
    allow-listed proxy. Raises IdentityError for headers a proxy would never send (a `system:`
    name or group, control characters)."""
    if not trusted(remote, proxies):
        return None
    user = (headers.get(USER_HEADER) or "").strip()
    if not user:
        return None
    email = (headers.get(EMAIL_HEADER) or "").strip() or None
    groups = tuple(g.strip() for g in (headers.get(GROUPS_HEADER) or "").split(",") if g.strip())
    for value in (user, email or "", *groups):
        if value and not _NAME.match(value):
            raise IdentityError("the proxy's identity headers hold characters a name cannot")
    if user.startswith("system:") or any(g.startswith("system:") for g in groups):
        raise IdentityError(
            f"the desk does not act as {user!r} or a system: group: Kubernetes' own identities "
            "are not people"
        )
    return Person(user, email, groups)


def person_from_review(username: str, groups: Iterable[str]) -> Person:
    """The person a bearer token belongs to, as the API server's TokenReview says. Kubernetes'
    own components and the system:masters group are refused (the desk acts for people and
    their service accounts, not for the cluster's superusers)."""
    if not username or (
        username.startswith("system:") and not username.startswith("system:serviceaccount:")
    ):
        raise IdentityError(f"the desk does not act as {username!r}: not a person")
    kept = tuple(g for g in groups if g != AUTHENTICATED)
    if "system:masters" in kept:
        raise IdentityError(
            "the desk does not act for members of system:masters: use kubectl for that"
        )
    return Person(username, None, kept)


def bearer(headers: Mapping[str, str]) -> str | None:
    """The bearer token of an Authorization header, if any."""
    scheme, _, token = (headers.get("Authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def csrf_token(secret: bytes, person: Person, now: datetime) -> str:
    """A form token for `person`, valid for CSRF_LIFETIME."""
    expires = int((now + CSRF_LIFETIME).timestamp())
    return f"{expires}.{_mac(secret, person, expires)}"


def csrf_valid(secret: bytes, person: Person, token: str, now: datetime) -> bool:
    """Whether `token` was made for `person` by this desk and has not expired."""
    expires_text, _, mac = token.partition(".")
    if not expires_text.isdigit() or not mac:
        return False
    expires = int(expires_text)
    if expires < now.timestamp():
        return False
    return hmac.compare_digest(mac, _mac(secret, person, expires))


def _mac(secret: bytes, person: Person, expires: int) -> str:
    message = f"{person.username}\n{','.join(person.groups)}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


# -- what the pages show ---------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceRow:
    namespace: str
    service: str
    service_level: str
    objectives: list[dict[str, Any]]  # name, objective, sli, budget (fractions), measured
    open_incidents: int
    ready: str | None  # the Ready reason


def services(
    levels: Iterable[Mapping[str, Any]], incidents: Iterable[Mapping[str, Any]]
) -> list[ServiceRow]:
    """One row per ServiceLevel: its objectives as last measured and its open incidents."""
    open_by: dict[tuple[str, str], int] = {}
    for i in incidents:
        if not is_open(i):
            continue
        key = (_namespace(i), str((i.get("spec") or {}).get("service") or ""))
        open_by[key] = open_by.get(key, 0) + 1
    rows = []
    for level in levels:
        spec, status = level.get("spec") or {}, level.get("status") or {}
        measured = {o.get("name"): o for o in status.get("objectives") or []}
        objectives = [
            {
                "name": o.get("name"),
                "objective": o.get("objective"),
                "sli": (measured.get(o.get("name")) or {}).get("sli"),
                "budget": (measured.get(o.get("name")) or {}).get("errorBudgetRemaining"),
            }
            for o in spec.get("objectives") or []
        ]
        service = str(spec.get("service") or "")
        rows.append(
            ServiceRow(
                _namespace(level),
                service,
                str((level.get("metadata") or {}).get("name")),
                objectives,
                open_by.get((_namespace(level), service), 0),
                _ready(level),
            )
        )
    return sorted(rows, key=lambda r: (r.namespace, r.service))


RESOLVED = ("Resolved", "Closed")
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")


def is_open(incident: Mapping[str, Any]) -> bool:
    return (incident.get("spec") or {}).get("state") not in RESOLVED


@dataclass(frozen=True)
class IncidentFilter:
    priority: str | None = None
    state: str | None = None  # "open", "resolved" or a state name
    service: str | None = None

    def matches(self, incident: Mapping[str, Any]) -> bool:
        spec, status = incident.get("spec") or {}, incident.get("status") or {}
        if self.priority and status.get("priority") != self.priority:
            return False
        if self.service and spec.get("service") != self.service:
            return False
        if self.state == "open":
            return is_open(incident)
        if self.state == "resolved":
            return not is_open(incident)
        return not self.state or spec.get("state") == self.state


def incidents(
    items: Iterable[Mapping[str, Any]], chosen: IncidentFilter
) -> list[Mapping[str, Any]]:
    """The incidents the filter lets through, the most urgent and newest first."""
    found = [i for i in items if chosen.matches(i)]

    def order(i: Mapping[str, Any]) -> tuple[int, float]:
        priority = str((i.get("status") or {}).get("priority") or "P5")
        rank = PRIORITIES.index(priority) if priority in PRIORITIES else len(PRIORITIES)
        created = str((i.get("metadata") or {}).get("creationTimestamp") or "")
        try:
            when = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
        except ValueError:
            when = 0.0
        return rank, -when

    return sorted(found, key=order)


def _namespace(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def _ready(obj: Mapping[str, Any]) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("reason"))
    return None


REPORT_NAME = re.compile(r"[^a-z0-9-]+")


def incident_name(title: str, now: datetime) -> str:
    """A name for a reported issue: the title's words and the time, e.g.
    `checkout-is-slow-20261202-1405`."""
    words = REPORT_NAME.sub("-", title.lower()).strip("-")[:40].strip("-") or "issue"
    return f"{words}-{now:%Y%m%d-%H%M%S}"


# -- the change calendar ---------------------------------------------------------------------

CALENDAR_PHASES = ("Scheduled", "InProgress", "Verifying")  # the changes a calendar shows


@dataclass(frozen=True)
class Day:
    date: datetime  # midnight UTC
    items: list[tuple[str, str, str, str]]  # (service, kind, what, "HH:MM–HH:MM")


def period(view: str, today: datetime) -> tuple[datetime, int]:
    """The first day (a Monday, midnight UTC) and the number of days of a week or month view."""
    midnight = today.replace(hour=0, minute=0, second=0, microsecond=0)
    if view == "month":
        first = midnight.replace(day=1)
        start = first - timedelta(days=first.weekday())
        following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        days = ((following - start).days + 6) // 7 * 7
        return start, days
    return midnight - timedelta(days=midnight.weekday()), 7


def calendar_days(
    rows: Iterable[tuple[str, datetime, datetime, str, str]], start: datetime, days: int
) -> list[Day]:
    """`rows` of (service, start, end, kind, what) laid out per day, each day's in order."""
    result = []
    listed = sorted(rows, key=lambda r: (r[1], r[0]))
    for n in range(days):
        begins = start + timedelta(days=n)
        ends = begins + timedelta(days=1)
        items = [
            (
                service,
                kind,
                what,
                "all day"
                if s <= begins and e >= ends
                else f"{max(s, begins):%H:%M}–{min(e, ends):%H:%M}",
            )
            for service, s, e, kind, what in listed
            if s < ends and e > begins
        ]
        result.append(Day(begins, _collapsed(items)))
    return result


SHOWN_PER_DAY = 3  # occurrences of one thing a day shows before it sums up the rest


def _collapsed(items: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    """A day's entries with each (service, kind, what) shown at most SHOWN_PER_DAY times, the
    rest summed up in one line (a window every minute is 1,440 entries a day)."""
    counts: dict[tuple[str, str, str], int] = {}
    for service, kind, what, _ in items:
        counts[(service, kind, what)] = counts.get((service, kind, what), 0) + 1
    seen: dict[tuple[str, str, str], int] = {}
    last: dict[tuple[str, str, str], str] = {}
    for service, kind, what, when in items:
        last[(service, kind, what)] = when
    out = []
    for service, kind, what, when in items:
        key = (service, kind, what)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] < SHOWN_PER_DAY or counts[key] <= SHOWN_PER_DAY:
            out.append((service, kind, what, when))
        elif seen[key] == SHOWN_PER_DAY:
            more = counts[key] - SHOWN_PER_DAY + 1
            until = last[key].rsplit("–", 1)[-1]
            out.append((service, kind, f"{what}: {more} more times, until {until}", "…"))
    return out


# -- the service catalog ---------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """A catalog item offered for one service (in the namespace of its ServiceLevel)."""

    namespace: str
    service: str
    item: Mapping[str, Any]  # status.catalog's entry: name, title, parameters...

    @property
    def name(self) -> str:
        return str(self.item.get("name") or "")

    @property
    def path(self) -> str:
        return f"{self.namespace}/{self.service}/{self.name}"


def offers(levels: Iterable[Mapping[str, Any]]) -> list[Offer]:
    """Every catalog item each ServiceLevel's status offers, by service and title."""
    found = []
    for level in levels:
        service = str((level.get("spec") or {}).get("service") or "")
        for item in (level.get("status") or {}).get("catalog") or ():
            if service and isinstance(item, Mapping) and item.get("name"):
                found.append(Offer(_namespace(level), service, item))
    return sorted(found, key=lambda o: (o.service, str(o.item.get("title")), o.namespace))


@dataclass(frozen=True)
class FormField:
    """One input of a catalog item's form, made from the parameter's type and bounds."""

    name: str  # the form's field name: p_<parameter>
    label: str
    widget: str  # select, number or text
    value: str
    required: bool
    options: tuple[str, ...] = ()
    min: str | None = None
    max: str | None = None
    step: str | None = None
    max_length: int | None = None
    pattern: str | None = None
    help: str | None = None


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def form_fields(offer: Offer, form: Mapping[str, str]) -> list[FormField]:
    """The form's inputs for `offer`, filled with what was typed (`form`) or the defaults."""
    fields = []
    for p in offer.item.get("parameters") or ():
        name, kind = f"p_{p.get('name')}", str(p.get("type") or "string")
        default = p.get("default")
        value = form[name] if name in form else _shown(default)
        required = bool(p.get("required", True)) and default is None
        common = {
            "name": name,
            "label": str(p.get("title") or p.get("name")) + ("" if required else " (optional)"),
            "value": value,
            "required": required,
            "help": p.get("description"),
        }
        if p.get("values"):
            options = tuple(_shown(v) for v in p["values"])
            fields.append(FormField(widget="select", options=options, **common))
        elif kind == "boolean":
            fields.append(FormField(widget="select", options=("false", "true"), **common))
        elif kind in ("integer", "number"):
            fields.append(
                FormField(
                    widget="number",
                    min=None if p.get("min") is None else _shown(p["min"]),
                    max=None if p.get("max") is None else _shown(p["max"]),
                    step="1" if kind == "integer" else "any",
                    **common,
                )
            )
        else:
            fields.append(
                FormField(
                    widget="text",
                    max_length=int(p.get("maxLength") or 256),
                    pattern=p.get("pattern"),
                    **common,
                )
            )
    return fields


def request_name(item: str, now: datetime) -> str:
    """A name for a request made at the desk, e.g. `scale-web-20261202-140512`."""
    words = REPORT_NAME.sub("-", item.lower()).strip("-")[:40].strip("-") or "request"
    return f"{words}-{now:%Y%m%d-%H%M%S}"


def requests_of(
    requests: Iterable[Mapping[str, Any]], username: str | None, limit: int = 200
) -> list[Mapping[str, Any]]:
    """The requests `username` made (everyone's when None), newest first."""
    mine = [
        r
        for r in requests
        if username is None
        or ((r.get("spec") or {}).get("requester") or {}).get("username") == username
    ]
    mine.sort(key=lambda r: str((r.get("metadata") or {}).get("creationTimestamp")), reverse=True)
    return mine[:limit]
