"""The service desk: web pages for the people who do not use kubectl (`opsledger desk`).

Server-rendered with Jinja2 (autoescaped: every value from the cluster is text, never markup),
no front-end build, usable on a phone. Pages read the watch-fed cache (services.desk), never the
API server per request. Who is asking comes from the authenticating proxy's headers, believed
only from its allow-listed addresses (domain.desk); writes are made as that person through
Kubernetes impersonation, so RBAC decides and the API server records them, and every form
carries a CSRF token bound to the person.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from opsledger.domain import desk, desk_views, status_page
from opsledger.domain.records import record_path
from opsledger.domain.redaction import Redactor
from opsledger.models import CHANGE, CONFIGURATION_ITEM, INCIDENT, SERVICE_LEVEL, SERVICE_REQUEST
from opsledger.models.settings import DeskSettings
from opsledger.services.desk import (
    BudgetHistory,
    DeskApp,
    DeskCache,
    RecordHistory,
    RefusedError,
    TokenPeople,
    calendar,
    report_issue,
    request_service,
    service_page,
)

log = logging.getLogger("opsledger.desk")
_REDACT = Redactor()
OPEN_PATHS = ("/healthz",)
STATUS_PATHS = ("/status", "/api/v2/summary.json")


@dataclass
class Desk:
    settings: DeskSettings
    cache: DeskCache
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    history: RecordHistory | None = None
    budgets: BudgetHistory | None = None

    @classmethod
    def of(cls, state: DeskApp) -> Desk:
        return cls(
            state.settings,
            state.cache,
            state.secret,
            history=state.history,
            budgets=state.budgets,
        )

    def __post_init__(self) -> None:
        self.proxies = desk.parse_networks(self.settings.trusted_proxies)
        self.tokens = TokenPeople(self.cache.kube)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(Path(__file__).with_name("desk_templates")),
            autoescape=True,
            undefined=jinja2.ChainableUndefined,
        )
        # JSON as text (autoescaping makes it safe in the page), not tojson's \u003c escapes
        self.templates.filters["json"] = lambda v: json.dumps(v, ensure_ascii=False)

    # -- the plumbing ----------------------------------------------------------------------

    def render(
        self, request: web.Request, template: str, status: int = 200, **values: Any
    ) -> web.Response:
        page = self.templates.get_template(template).render(person=request.get("person"), **values)
        return web.Response(
            text=page,
            status=status,
            content_type="text/html",
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
            },
        )

    def message(self, request: web.Request, status: int, heading: str, text: str) -> web.Response:
        return self.render(request, "message.html", status, heading=heading, message=text)

    def _expired(self, request: web.Request, where: str) -> web.Response:
        """A form whose CSRF token is not the person's, or too old."""
        return self.message(
            request,
            403,
            "The form has expired",
            f"This form was not issued to you by the desk, or it is too old. Open {where} "
            "again and send it from there.",
        )

    async def _cached(self, plural: str, namespace: str, name: str) -> None:
        """Wait (5 s at most) for what was just created to reach the watch-fed cache, so the
        page it leads to shows it."""
        for _ in range(50):
            if self.cache.get(plural, namespace, name):
                return
            await asyncio.sleep(0.1)

    @web.middleware
    async def identify(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            request["person"] = None
            return await handler(request)
        try:
            token = desk.bearer(request.headers)
            if token is not None:  # a Kubernetes token: the API server says whose
                try:
                    person = await asyncio.to_thread(self.tokens.person, token)
                except desk.IdentityError:
                    raise
                except Exception:
                    log.exception("could not review a bearer token")
                    request["person"] = None
                    return self.message(
                        request,
                        503,
                        "Try again in a moment",
                        "The desk could not ask the API server whose token this is.",
                    )
                if person is None:
                    request["person"] = None
                    return self.message(
                        request,
                        401,
                        "Sign in first",
                        "The API server did not accept your bearer token (expired, or not "
                        "one of this cluster's).",
                    )
            else:
                person = desk.person_from(request.headers, request.remote, self.proxies)
        except desk.IdentityError as exc:
            log.warning("refused identity headers from %s: %s", request.remote, exc)
            request["person"] = None
            return self.message(request, 403, "Not signed in", str(exc))
        request["person"] = person
        public = self.settings.public_status and request.path in STATUS_PATHS
        if person is None and not self.settings.anonymous_read and not public:
            return self.message(
                request,
                401,
                "Sign in first",
                "The service desk knows who you are from your organisation's sign-in (the "
                "authenticating proxy in front of it). Open the desk through that address; "
                "reading without signing in is switched off here.",
            )
        return await handler(request)

    # -- the pages -------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok" if self.cache.ready else "starting")

    async def services(self, request: web.Request) -> web.Response:
        rows = desk.services(
            self.cache.items(SERVICE_LEVEL.plural), self.cache.items(INCIDENT.plural)
        )
        return self.render(request, "services.html", rows=rows, ready=self.cache.ready)

    async def service(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        page = await asyncio.to_thread(
            service_page, self.cache, self.budgets, namespace, name, self.clock()
        )
        if page is None:
            return self.message(
                request, 404, "No such service", f"There is no ServiceLevel {namespace}/{name}."
            )
        status = page.level.get("status") or {}
        return self.render(
            request,
            "service.html",
            page=page,
            spec=page.spec,
            level_status=status,
            measured={o.get("name"): o for o in status.get("objectives") or ()},
            offers=desk.offers([page.level]),
        )

    async def incidents(self, request: web.Request) -> web.Response:
        query = request.query
        chosen = desk.IncidentFilter(
            priority=query.get("priority") or None,
            state=query.get("state") or None,
            service=query.get("service") or None,
        )
        found = desk.incidents(self.cache.items(INCIDENT.plural), chosen)
        return self.render(
            request,
            "incidents.html",
            incidents=found[:500],
            chosen=chosen,
            priorities=desk.PRIORITIES,
        )

    async def incident(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        found = self.cache.get(INCIDENT.plural, namespace, name)
        if found is None:
            return self.message(
                request, 404, "No such incident", f"There is no incident {namespace}/{name}."
            )
        return self.render(
            request, "incident.html", incident=found, reported="reported" in request.query
        )

    def _summary(self, request: web.Request) -> dict[str, Any]:
        return status_page.summary(
            name=self.settings.page_name,
            url=f"{request.scheme}://{request.host}/status",
            levels=self.cache.items(SERVICE_LEVEL.plural),
            incidents=self.cache.items(INCIDENT.plural),
            changes=self.cache.items(CHANGE.plural),
            now=self.clock(),
        )

    async def calendar(self, request: web.Request) -> web.Response:
        view = "month" if request.query.get("view") == "month" else "week"
        service = request.query.get("service") or None
        now = self.clock()
        try:
            day = datetime.strptime(request.query.get("date") or "", "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            day = now
        _, days = await asyncio.to_thread(calendar, self.cache, view, day, service)
        return self.render(
            request,
            "calendar.html",
            days=days,
            view=view,
            service=service,
            date=f"{day:%Y-%m-%d}",
            today=f"{now:%Y-%m-%d}",
        )

    async def summary_json(self, request: web.Request) -> web.Response:
        return web.json_response(
            self._summary(request), headers={"Access-Control-Allow-Origin": "*"}
        )

    async def status(self, request: web.Request) -> web.Response:
        return self.render(request, "status.html", summary=self._summary(request))

    def _report_form(
        self, request: web.Request, person: desk.Person, status: int = 200, **values: Any
    ) -> web.Response:
        rows = desk.services(self.cache.items(SERVICE_LEVEL.plural), ())
        token = desk.csrf_token(self.secret, person, self.clock())
        return self.render(request, "report.html", status, rows=rows, csrf=token, **values)

    async def report_form(self, request: web.Request) -> web.Response:
        person = request["person"]
        if person is None:
            return self.message(request, 401, "Sign in first", "Sign in to report an issue.")
        return self._report_form(request, person, form={})

    async def report(self, request: web.Request) -> web.Response:
        person = request["person"]
        if person is None:
            return self.message(request, 401, "Sign in first", "Sign in to report an issue.")
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not desk.csrf_valid(self.secret, person, form.get("csrf", ""), self.clock()):
            return self._expired(request, "Report an issue")
        namespace, _, service = form.get("service_key", "").partition("/")
        fields = {**form, "namespace": namespace, "service": service}
        try:
            reported = await asyncio.to_thread(
                report_issue, self.cache.kube, person, fields, self.clock()
            )
        except RefusedError as exc:
            log.info("report by %s refused: %s", person.username, exc)
            return self._report_form(request, person, exc.status, form=form, error=str(exc))
        log.info("%s reported %s/%s", person.username, reported.namespace, reported.name)
        await self._cached(INCIDENT.plural, reported.namespace, reported.name)
        raise web.HTTPSeeOther(f"/incidents/{reported.namespace}/{reported.name}?reported")

    # -- changes and the CMDB ----------------------------------------------------------------

    async def changes(self, request: web.Request) -> web.Response:
        chosen = desk_views.ChangeFilter(
            phase=request.query.get("phase") or None, service=request.query.get("service") or None
        )
        found = desk_views.changes(self.cache.items(CHANGE.plural), chosen)
        return self.render(request, "changes.html", changes=found, chosen=chosen)

    async def change(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        found = self.cache.get(CHANGE.plural, namespace, name)
        if found is None:
            return self.message(
                request, 404, "No such change", f"There is no change {namespace}/{name}."
            )
        # The plan as the CMDB record shows it: secret-looking values fingerprinted.
        spec = _REDACT.change_spec(dict(found.get("spec") or {}))
        return self.render(request, "change.html", change=found, spec=spec)

    async def items(self, request: web.Request) -> web.Response:
        query = (request.query.get("q") or "").strip()[:200]
        found = desk_views.items(self.cache.items(CONFIGURATION_ITEM.plural), query)
        return self.render(request, "items.html", items=found, query=query)

    async def item(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        found = self.cache.get(CONFIGURATION_ITEM.plural, namespace, name)
        if found is None:
            return self.message(
                request, 404, "No such item", f"There is no configuration item {namespace}/{name}."
            )
        picture = await asyncio.to_thread(
            desk_views.impact_picture,
            f"{namespace}/{name}",
            self.cache.items(CONFIGURATION_ITEM.plural),
        )
        path = record_path(self.settings.cluster, namespace, CONFIGURATION_ITEM.plural, name)
        history: list[tuple[str, str, str, str]] | None = None
        unread = None
        if self.history is not None:
            history, unread = await asyncio.to_thread(self.history.log, path)
        return self.render(
            request,
            "item.html",
            item=found,
            picture=picture,
            box=(desk_views.BOX_WIDTH, desk_views.BOX_HEIGHT),
            path=path,
            history=history,
            unread=unread,
        )

    # -- service requests ------------------------------------------------------------------

    async def requests(self, request: web.Request) -> web.Response:
        person = request["person"]
        mine = request.query.get("all") is None and person is not None
        found = desk.requests_of(
            self.cache.items(SERVICE_REQUEST.plural), person.username if mine else None
        )
        return self.render(
            request,
            "requests.html",
            offers=desk.offers(self.cache.items(SERVICE_LEVEL.plural)),
            requests=found,
            mine=mine,
        )

    def _offer(self, request: web.Request) -> desk.Offer | None:
        info = request.match_info
        wanted = f"{info['namespace']}/{info['service']}/{info['item']}"
        offers = desk.offers(self.cache.items(SERVICE_LEVEL.plural))
        return next((o for o in offers if o.path == wanted), None)

    def _request_form(
        self,
        request: web.Request,
        person: desk.Person,
        offer: desk.Offer,
        status: int = 200,
        **values: Any,
    ) -> web.Response:
        token = desk.csrf_token(self.secret, person, self.clock())
        fields = desk.form_fields(offer, values.get("form") or {})
        return self.render(
            request, "request.html", status, offer=offer, fields=fields, csrf=token, **values
        )

    async def request_form(self, request: web.Request) -> web.Response:
        person = request["person"]
        if person is None:
            return self.message(request, 401, "Sign in first", "Sign in to request a service.")
        offer = self._offer(request)
        if offer is None:
            return self.message(request, 404, "No such item", "The catalog has no such item.")
        return self._request_form(request, person, offer, form={})

    async def request_service(self, request: web.Request) -> web.Response:
        person = request["person"]
        if person is None:
            return self.message(request, 401, "Sign in first", "Sign in to request a service.")
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not desk.csrf_valid(self.secret, person, form.get("csrf", ""), self.clock()):
            return self._expired(request, "the catalog")
        offer = self._offer(request)
        if offer is None:
            return self.message(request, 404, "No such item", "The catalog has no such item.")
        try:
            made = await asyncio.to_thread(
                request_service, self.cache.kube, person, offer, form, self.clock()
            )
        except RefusedError as exc:
            log.info("request by %s refused: %s", person.username, exc)
            return self._request_form(request, person, offer, exc.status, form=form, error=str(exc))
        log.info("%s requested %s/%s", person.username, made.namespace, made.name)
        await self._cached(SERVICE_REQUEST.plural, made.namespace, made.name)
        raise web.HTTPSeeOther(f"/requests/{made.namespace}/{made.name}?requested")

    async def service_request(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        found = self.cache.get(SERVICE_REQUEST.plural, namespace, name)
        if found is None:
            return self.message(
                request, 404, "No such request", f"There is no request {namespace}/{name}."
            )
        return self.render(
            request, "service_request.html", sr=found, requested="requested" in request.query
        )

    def app(self) -> web.Application:
        application = web.Application(middlewares=[self.identify], client_max_size=64 * 1024)
        application.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/", self.services),
                web.get("/services/{namespace}/{name}", self.service),
                web.get("/incidents", self.incidents),
                web.get("/incidents/{namespace}/{name}", self.incident),
                web.get("/report", self.report_form),
                web.get("/status", self.status),
                web.get("/calendar", self.calendar),
                web.get("/api/v2/summary.json", self.summary_json),
                web.post("/report", self.report),
                web.get("/changes", self.changes),
                web.get("/changes/{namespace}/{name}", self.change),
                web.get("/cmdb", self.items),
                web.get("/cmdb/{namespace}/{name}", self.item),
                web.get("/requests", self.requests),
                web.get("/requests/new/{namespace}/{service}/{item}", self.request_form),
                web.post("/requests/new/{namespace}/{service}/{item}", self.request_service),
                web.get("/requests/{namespace}/{name}", self.service_request),
            ]
        )
        return application


async def serve(desk_: Desk) -> None:
    """Serve the desk until cancelled."""
    runner = web.AppRunner(desk_.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, desk_.settings.bind_address, desk_.settings.port)
    await site.start()
    log.info("service desk on http://%s:%d/", desk_.settings.bind_address, desk_.settings.port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
