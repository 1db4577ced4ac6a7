"""The Alertmanager receiver: an HTTP endpoint Alertmanager's webhook_config posts to.

A firing alert opens an Incident (or finds it open: Alertmanager repeats and retries), a resolved
alert resolves it. Requests must carry the bearer token from OPSLEDGER_RECEIVER_TOKEN_FILE. A body
that is not a notification gets 400 and a log line; a failure to reach the API server gets 500,
so Alertmanager retries and nothing is lost.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from pathlib import Path
from typing import Any

import kopf
from aiohttp import web
from pydantic import ValidationError

from opsledger.domain.alerts import Action, Routing, actions
from opsledger.domain.validation import describe
from opsledger.handlers.common import context
from opsledger.models import API_GROUP, API_VERSION, INCIDENT
from opsledger.models.alertmanager import Notification
from opsledger.models.incident import RESOLVED_STATES
from opsledger.models.settings import Settings
from opsledger.services.context import Context

log = logging.getLogger("opsledger.receiver")

PATH = "/alertmanager"


class Receiver:
    """Turns notifications into Incidents through the API server."""

    def __init__(self, ctx: Context, token: str) -> None:
        self.ctx = ctx
        self.token = token.encode()
        settings = ctx.settings
        self.routing = Routing(
            default_namespace=settings.receiver_namespace,
            service_label=settings.receiver_service_label,
            item_label=settings.receiver_item_label,
        )
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
        todo = actions(notification, self.routing, resolve=self.ctx.settings.receiver_resolve)
        results = []
        async with self.lock:
            for action in todo:
                try:
                    outcome = await asyncio.to_thread(self._apply, action)
                except Exception as exc:  # Alertmanager retries on 5xx
                    log.exception("could not record alert %s", action.name)
                    return web.json_response(
                        {"error": f"could not record {action.namespace}/{action.name}: {exc}"},
                        status=500,
                    )
                self.ctx.metrics.alerts.labels(action.kind, outcome).inc()
                results.append({"incident": action.name, "outcome": outcome})
        return web.json_response({"incidents": results})

    def _apply(self, action: Action) -> str:
        kube = self.ctx.kube
        assert kube is not None
        namespace = action.namespace
        if kube.get("v1", "Namespace", namespace, "") is None:
            namespace = self.ctx.settings.receiver_namespace
        existing = kube.get_custom(INCIDENT.plural, action.name, namespace)
        if action.kind == "resolve":
            if existing is None:
                return "unknown"  # never opened here (or deleted by people): nothing to resolve
            if (existing.get("spec") or {}).get("state") in RESOLVED_STATES:
                return "already-resolved"
            kube.patch_spec(
                INCIDENT.plural,
                action.name,
                namespace,
                {"state": "Resolved", "resolution": action.resolution},
            )
            log.info("resolved Incident %s/%s: %s", namespace, action.name, action.resolution)
            return "resolved"
        if existing is not None:
            return "duplicate"
        created = kube.create_custom(
            INCIDENT.plural,
            namespace,
            {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": INCIDENT.kind,
                "metadata": {"name": action.name, "labels": action.labels},
                "spec": action.spec,
            },
        )
        if created is None:
            return "duplicate"
        log.info("opened Incident %s/%s for alert %s", namespace, action.name, action.alertname)
        return "opened"


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Serve the receiver while the operator runs (when a port is configured)."""
    if settings.receiver_port is None:
        return
    runners: list[web.AppRunner] = []

    @kopf.on.startup(registry=registry, id="alertmanager-receiver")
    async def serve(memo: kopf.Memo, **_: Any) -> None:
        ctx = context(memo)
        assert settings.receiver_token_file
        token = Path(settings.receiver_token_file).read_text().strip()
        if not token:
            raise kopf.PermanentError(f"{settings.receiver_token_file} holds no token")
        receiver = Receiver(ctx, token)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post(PATH, receiver.alertmanager)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, settings.bind_address, settings.receiver_port).start()
        except OSError as exc:  # a clear stop, not a start-up activity retried forever
            await runner.cleanup()
            raise kopf.PermanentError(
                f"the Alertmanager receiver cannot listen on {settings.bind_address}:"
                f"{settings.receiver_port} ({exc}); free the port or set another "
                "OPSLEDGER_RECEIVER_PORT"
            ) from exc
        runners.append(runner)
        log.info(
            "Alertmanager receiver on http://%s:%d%s",
            settings.bind_address,
            settings.receiver_port,
            PATH,
        )

    @kopf.on.cleanup(registry=registry, id="alertmanager-receiver-stop")
    async def stop(**_: Any) -> None:
        for runner in runners:
            await runner.cleanup()
