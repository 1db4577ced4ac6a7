"""The service desk's use cases: what its pages read (a cache kept by watches, so a page is never
a list call), and what people do there, which is done as them.

The cache lists each kind once and then follows its watch; when the API server no longer keeps
the version it watches from (410 Gone) it lists again, and a failed watch is retried after a
pause. Pages read the cache's copy; until the first list of a kind is in, `ready` says so.

Writes are made as the signed-in person through Kubernetes impersonation (adapters.kube
`create_custom_as`): RBAC decides whether they may, the API server records them, and its
refusal is shown to them in its own words.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from opsledger.adapters.gitcmdb import CMDBError, GitCMDB
from opsledger.adapters.kube import GoneError, Kube
from opsledger.adapters.prometheus import Prometheus, PrometheusUnavailableError
from opsledger.domain import catalog
from opsledger.domain.calendar_feed import entries
from opsledger.domain.desk import (
    CALENDAR_PHASES,
    Day,
    IdentityError,
    Offer,
    Person,
    calendar_days,
    incident_name,
    is_open,
    period,
    person_from_review,
    request_name,
)
from opsledger.domain.desk_views import BurnDown, burn_down
from opsledger.domain.slo import escape_label_value, seconds
from opsledger.domain.validation import describe
from opsledger.domain.windows import Decision, decide
from opsledger.models import (
    CHANGE,
    CONFIGURATION_ITEM,
    INCIDENT,
    SERVICE_LEVEL,
    SERVICE_REQUEST,
)
from opsledger.models.common import API_GROUP, API_VERSION
from opsledger.models.incident import IncidentSpec
from opsledger.models.request import CatalogItem, CatalogParameter
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.models.settings import DeskSettings

log = logging.getLogger("opsledger.desk")
KINDS = (
    SERVICE_LEVEL.plural,
    INCIDENT.plural,
    CHANGE.plural,
    CONFIGURATION_ITEM.plural,
    SERVICE_REQUEST.plural,
)
RETRY = 5.0  # seconds before a failed list or watch is tried again


class DeskCache:
    """Every object of OpsLedger's kinds, kept current by one watch per kind."""

    def __init__(self, kube: Kube, kinds: Iterable[str] = KINDS) -> None:
        self.kube = kube
        self.kinds = tuple(kinds)
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for plural in self.kinds:
            thread = threading.Thread(
                target=self._follow, args=(plural,), name=f"desk-{plural}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()

    @property
    def ready(self) -> bool:
        with self._lock:
            return all(plural in self._objects for plural in self.kinds)

    def items(self, plural: str) -> list[dict[str, Any]]:
        with self._lock:
            return list((self._objects.get(plural) or {}).values())

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return (self._objects.get(plural) or {}).get((namespace, name))

    def _follow(self, plural: str) -> None:
        while not self._stop.is_set():
            try:
                items, version = self.kube.list_versioned(plural)
                with self._lock:
                    self._objects[plural] = {_key(o): o for o in items}
                while not self._stop.is_set():
                    for kind, obj in self.kube.watch_custom(plural, version, timeout=60):
                        version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                        if kind == "BOOKMARK":
                            continue
                        with self._lock:
                            table = self._objects.setdefault(plural, {})
                            if kind == "DELETED":
                                table.pop(_key(obj), None)
                            else:
                                table[_key(obj)] = obj
            except GoneError:
                log.info("the watch of %s is too old: listing again", plural)
            except Exception:  # the API server went away: try again, never stop following
                log.exception("following %s failed; trying again in %gs", plural, RETRY)
                self._stop.wait(RETRY)

    def wait_ready(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.ready and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.ready


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class TokenPeople:
    """Who bearer tokens belong to, asked of the API server (TokenReview) and remembered for
    TTL seconds by the token's hash, so a page is not a review each time."""

    TTL = 60.0

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._known: dict[str, tuple[float, Person | None, str | None]] = {}
        self._lock = threading.Lock()

    def person(self, token: str) -> Person | None:
        """The token's person, or None when the API server does not accept it. Raises
        IdentityError for an identity the desk does not act for."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            known = self._known.get(key)
        if known is None or now - known[0] > self.TTL:
            reviewed = self.kube.review_token(token)
            person: Person | None = None
            refusal: str | None = None
            if reviewed is not None:
                try:
                    person = person_from_review(*reviewed)
                except IdentityError as exc:
                    refusal = str(exc)
            known = (now, person, refusal)
            with self._lock:
                if len(self._known) > 10_000:
                    self._known.clear()
                self._known[key] = known
        if known[2]:
            raise IdentityError(known[2])
        return known[1]


@dataclass(frozen=True)
class DeskApp:
    """What `opsledger desk` runs with (built by services.wiring)."""

    settings: DeskSettings
    cache: DeskCache
    secret: bytes
    history: RecordHistory | None = None
    budgets: BudgetHistory | None = None


class RecordHistory:
    """The CMDB records' audit trail (`git log`), read from a clone of the remote that is
    fetched at most every `every` seconds; the desk never writes to it."""

    def __init__(self, cmdb: GitCMDB, every: float = 30.0) -> None:
        self.cmdb = cmdb
        self.every = every
        self._fetched = -math.inf
        self._lock = threading.Lock()

    def log(self, path: str) -> tuple[list[tuple[str, str, str, str]], str | None]:
        """(commit, author, when, subject) of the record at `path`, newest first; and, when the
        remote cannot be read, why (then the last fetch's history, if any)."""
        problem = None
        with self._lock:
            if time.monotonic() - self._fetched > self.every:
                try:
                    self.cmdb.refresh()
                    self._fetched = time.monotonic()
                except CMDBError as exc:
                    problem = f"the CMDB could not be read just now: {exc}"
        try:
            return self.cmdb.log(path), problem
        except CMDBError as exc:
            return [], problem or f"the CMDB could not be read: {exc}"


@dataclass(frozen=True)
class Reported:
    namespace: str
    name: str


class RefusedError(Exception):
    """What the API server (or the form's own check) said no to, in words for the person."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def report_issue(kube: Kube, person: Person, form: dict[str, str], now: datetime) -> Reported:
    """Open an Incident from the desk's form, as `person`. Raises RefusedError (400 for a form that
    does not make a valid Incident, 403 when Kubernetes says they may not)."""
    namespace = (form.get("namespace") or "").strip()
    if not namespace:
        raise RefusedError("choose the namespace of the service the issue is about", 400)
    spec = {
        "title": (form.get("title") or "").strip(),
        "description": (form.get("description") or "").strip() or None,
        "service": (form.get("service") or "").strip() or None,
        "impact": form.get("impact") or "medium",
        "urgency": form.get("urgency") or "medium",
        "state": "New",
        "origin": {"type": "manual", "reference": f"service desk: {person.shown}"[:512]},
    }
    try:
        valid = IncidentSpec.model_validate(spec)
    except ValidationError as exc:
        raise RefusedError(describe(exc, root="the report"), 400) from exc
    name = incident_name(valid.title, now)
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": INCIDENT.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": valid.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    try:
        created = kube.create_custom_as(
            INCIDENT.plural, namespace, body, person.username, person.groups
        )
    except PermissionError as exc:
        raise RefusedError(f"Kubernetes refused: {exc}", 403) from exc
    except ValueError as exc:
        raise RefusedError(f"Kubernetes refused the report: {exc}", 400) from exc
    meta = created.get("metadata") or {}
    return Reported(str(meta.get("namespace") or namespace), str(meta.get("name") or name))


def request_service(
    kube: Kube, person: Person, offer: Offer, form: dict[str, str], now: datetime
) -> Reported:
    """Make a ServiceRequest for `offer` from the desk's generated form, as `person`. The values
    are checked against the item's types and bounds first, so the form says what is wrong; the
    operator checks them again against the item in Git. Raises RefusedError as report_issue."""
    item = CatalogItem(
        title=str(offer.item.get("title") or offer.name),
        parameters=[CatalogParameter.model_validate(p) for p in offer.item.get("parameters") or ()],
    )
    given = {p.name: form[f"p_{p.name}"] for p in item.parameters if form.get(f"p_{p.name}")}
    values, problems = catalog.accept(item, given)
    if problems:
        raise RefusedError("; ".join(problems), 400)
    justification = (form.get("justification") or "").strip()[:4096] or None
    name = request_name(offer.name, now)
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": SERVICE_REQUEST.kind,
        "metadata": {"name": name, "namespace": offer.namespace},
        "spec": {
            "item": offer.name,
            "parameters": values,
            **({"justification": justification} if justification else {}),
        },
    }
    try:
        created = kube.create_custom_as(
            SERVICE_REQUEST.plural, offer.namespace, body, person.username, person.groups
        )
    except PermissionError as exc:
        raise RefusedError(f"Kubernetes refused: {exc}", 403) from exc
    except ValueError as exc:
        raise RefusedError(f"Kubernetes refused the request: {exc}", 400) from exc
    meta = created.get("metadata") or {}
    return Reported(str(meta.get("namespace") or offer.namespace), str(meta.get("name") or name))


def calendar(
    cache: DeskCache, view: str, today: datetime, service: str | None
) -> tuple[datetime, list[Day]]:
    """The change calendar of every service (or one) for the week or month of `today`: windows,
    blackouts, freezes and scheduled and running changes. (Shared-calendar events live in the
    CMDB, which the desk does not read: `/v1/calendar.ics` on the operator has them.)"""
    start, days = period(view, today)
    until = start + timedelta(days=days)
    changes: dict[tuple[str, str], list[tuple[str, str, object, object, object]]] = {}
    for c in cache.items(CHANGE.plural):
        status, spec = c.get("status") or {}, c.get("spec") or {}
        if status.get("phase") not in CALENDAR_PHASES:
            continue
        window = status.get("window") or {}
        key = (str(c["metadata"].get("namespace")), str(spec.get("service")))
        changes.setdefault(key, []).append(
            (
                str(c["metadata"].get("name")),
                str(spec.get("summary") or ""),
                window.get("start"),
                window.get("end"),
                status.get("phase"),
            )
        )
    rows = []
    for level in cache.items(SERVICE_LEVEL.plural):
        try:
            spec = ServiceLevelSpec.model_validate(level.get("spec") or {})
        except ValidationError:
            continue
        if service and spec.service != service:
            continue
        namespace = str(level["metadata"].get("namespace"))
        for e in entries(
            spec.service,
            spec,
            (),
            changes.get((namespace, spec.service), ()),
            since=start,
            until=until,
        ):
            rows.append((spec.service, e.start, e.end, e.kind, e.what))
    return start, calendar_days(rows, start, days)


# -- a service's page ---------------------------------------------------------------------------


class BudgetHistory:
    """Each objective's error budget left over its window, as Prometheus recorded the operator's
    `opsledger_slo_error_budget_remaining`; asked at most every `every` seconds per objective."""

    def __init__(self, prometheus: Prometheus, every: float = 15.0) -> None:
        self.prometheus = prometheus
        self.every = every
        self._kept: dict[tuple[str, str, str], tuple[float, BurnDown | str]] = {}
        self._lock = threading.Lock()

    def burn_down(
        self, namespace: str, level: str, objective: str, window: str, now: datetime
    ) -> BurnDown | str:
        """The chart, or why there is none."""
        key = (namespace, level, objective)
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and time.monotonic() - kept[0] < self.every:
            return kept[1]
        span = seconds(window)
        labels = ",".join(
            f'{k}="{escape_label_value(v)}"'
            for k, v in (
                ("namespace", namespace),
                ("servicelevel", level),
                ("objective", objective),
            )
        )
        # 120 whole steps ending now (so the last is evaluated at now), each step's last value:
        # the operator's gauge is scraped far more often than the steps
        step = max(round(span / 120), 15)
        end = datetime.fromtimestamp(int(now.timestamp()), now.tzinfo)
        start = end - timedelta(seconds=step * 120)
        query = f"last_over_time(opsledger_slo_error_budget_remaining{{{labels}}}[{step}s])"
        try:
            series = self.prometheus.range(query, start, end, step)
        except PrometheusUnavailableError as exc:
            answer: BurnDown | str = f"Prometheus did not answer: {exc}"
        else:
            samples = [
                (float(t), float(v))
                for s in series[:1]
                for t, v in s.get("values") or ()
                if math.isfinite(float(v))
            ]
            answer = burn_down(samples, start.timestamp(), end.timestamp())
        with self._lock:
            self._kept[key] = (time.monotonic(), answer)
        return answer


@dataclass(frozen=True)
class ServicePage:
    level: dict[str, Any]
    spec: ServiceLevelSpec | None
    problem: str | None  # why the spec could not be read
    decision: Decision | None  # may a change start now, or the next window
    freezes: list[Any]  # the freezes not yet over
    incidents: list[dict[str, Any]]  # its open incidents
    charts: dict[str, BurnDown | str]  # objective → its burn-down, or why there is none


def service_page(
    cache: DeskCache,
    budgets: BudgetHistory | None,
    namespace: str,
    name: str,
    now: datetime,
) -> ServicePage | None:
    """What the page of ServiceLevel `namespace/name` shows; None when there is none."""
    level = cache.get(SERVICE_LEVEL.plural, namespace, name)
    if level is None:
        return None
    try:
        spec: ServiceLevelSpec | None = ServiceLevelSpec.model_validate(level.get("spec") or {})
    except ValidationError as exc:
        return ServicePage(level, None, describe(exc), None, [], [], {})
    assert spec is not None
    decision = decide(
        now, windows=spec.maintenance_windows, freezes=spec.freezes, blackouts=spec.blackouts
    )
    incidents = [
        i
        for i in cache.items(INCIDENT.plural)
        if (i.get("metadata") or {}).get("namespace") == namespace
        and (i.get("spec") or {}).get("service") == spec.service
        and is_open(i)
    ]
    charts: dict[str, BurnDown | str] = {}
    for objective in spec.objectives:
        charts[objective.name] = (
            budgets.burn_down(namespace, name, objective.name, objective.window, now)
            if budgets is not None
            else "the desk is not given Prometheus's address (OPSLEDGER_DESK_PROMETHEUS_URL)"
        )
    return ServicePage(
        level,
        spec,
        None,
        decision,
        sorted((f for f in spec.freezes if f.end > now), key=lambda f: f.start),
        sorted(incidents, key=lambda i: str((i.get("status") or {}).get("priority") or "P9")),
        charts,
    )
