"""The Alertmanager receiver: an HTTP endpoint Alertmanager's webhook_config posts to.

A firing alert opens an Incident (or finds it open: Alertmanager repeats and retries), a resolved
alert resolves it; `services.alerts` does both. Requests must carry the bearer token from
OPSLEDGER_RECEIVER_TOKEN_FILE. A body that is not a notification gets 400 and a log line; a
failure to reach the API server gets 500, so Alertmanager retries and nothing is lost. `serve`
is called by a Kopf startup handler in `handlers/servers.py`.

The same port answers `GET /v1/window?namespace=&service=`, the change calendar's answer for a CI
pipeline (no token: it says what `opsledger_change_freeze_active` on /metrics says, and why).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from opsledger.domain.validation import describe
from opsledger.models.alertmanager import Notification
from opsledger.services import alerts, calendars
from opsledger.services.context import Context

log = logging.getLogger("opsledger.receiver")

PATH = "/alertmanager"
WINDOW_PATH = "/v1/window"
FEED_PATH = "/v1/calendar.ics"


class Receiver:
    """Turns notifications into Incidents, one notification at a time."""

    def __init__(self, ctx: Context, token: str) -> None:
        self.ctx = ctx
        self.token = token.encode()
        self.routing = alerts.routing(ctx)
        self.lock = asyncio.Lock()  # one notification at a time: repeats never race

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self.token
        )

    async def alertmanager(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            log.warning("refused a notification from %s: wrong or no bearer token", request.remote)
            return web.json_response(
                {"error": "a valid bearer token is required"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="opsledger"'},
            )
        try:
            notification = Notification.model_validate_json(await request.read())
        except ValidationError as exc:
            reason = describe(exc, root="notification")
            log.warning("refused a malformed notification from %s: %s", request.remote, reason)
            self.ctx.metrics.alerts.labels("invalid", "refused").inc()
            return web.json_response({"error": reason}, status=400)
        todo = alerts.plan(self.ctx, notification, self.routing)
        results = []
        async with self.lock:
            for action in todo:
                try:
                    outcome = await asyncio.to_thread(alerts.apply, self.ctx, action)
                except Exception as exc:  # Alertmanager retries on 5xx
                    log.exception("could not record alert %s", action.name)
                    return web.json_response(
                        {"error": f"could not record {action.namespace}/{action.name}: {exc}"},
                        status=500,
                    )
                self.ctx.metrics.alerts.labels(action.kind, outcome).inc()
                results.append({"incident": action.name, "outcome": outcome})
        return web.json_response({"incidents": results})


async def window(ctx: Context, request: web.Request) -> web.Response:
    """GET /v1/window?namespace=&service=[&at=]: may a change of that service start now (or at
    `at`)? The JSON `opsledger window -o json` prints, for a pipeline step that asks before it
    deploys (exit on `allowed`)."""
    answer, status = calendars.window_answer(
        ctx,
        namespace=request.query.get("namespace", ""),
        service=request.query.get("service", ""),
        at=request.query.get("at"),
    )
    return web.json_response(answer, status=status)


async def calendar(ctx: Context, request: web.Request) -> web.Response:
    """GET /v1/calendar.ics?namespace=&service=[&days=]: the service's change calendar as an
    iCalendar feed people subscribe to."""
    answer, status = calendars.feed(
        ctx,
        namespace=request.query.get("namespace", ""),
        service=request.query.get("service", ""),
        days=request.query.get("days"),
    )
    if isinstance(answer, bytes):
        return web.Response(body=answer, content_type="text/calendar", charset="utf-8")
    return web.json_response(answer, status=status)


async def serve(ctx: Context, stack: contextlib.AsyncExitStack) -> str | None:
    """Start the receiver; `stack` stops it. Returns why it cannot start when trying again
    would not help (no token, the port taken)."""
    settings = ctx.settings
    assert settings.receiver_port is not None
    assert settings.receiver_token_file
    token = Path(settings.receiver_token_file).read_text().strip()
    if not token:
        return f"{settings.receiver_token_file} holds no token"
    receiver = Receiver(ctx, token)
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post(PATH, receiver.alertmanager)
    app.router.add_get(WINDOW_PATH, lambda request: window(ctx, request))
    app.router.add_get(FEED_PATH, lambda request: calendar(ctx, request))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.bind_address, settings.receiver_port).start()
    except OSError as exc:  # a clear stop, not a start-up activity retried forever
        await runner.cleanup()
        return (
            f"the Alertmanager receiver cannot listen on {settings.bind_address}:"
            f"{settings.receiver_port} ({exc}); free the port or set another "
            "OPSLEDGER_RECEIVER_PORT"
        )
    stack.push_async_callback(runner.cleanup)
    log.info(
        "Alertmanager receiver on http://%s:%d%s",
        settings.bind_address,
        settings.receiver_port,
        PATH,
    )
    return None
