"""Wiring of the Kopf operator: settings, handler registration, start-up checks. No logic."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, cast

import kopf

from opsledger.adapters import kube
from opsledger.adapters.metrics import Metrics
from opsledger.handlers import (
    change,
    configitem,
    health,
    incident,
    kpi,
    leadership,
    report,
    servers,
    service_request,
    servicelevel,
    views,
)
from opsledger.models import API_GROUP, KINDS
from opsledger.models.settings import DeskSettings, Settings
from opsledger.servers import admission, receiver
from opsledger.servers import desk as servers_desk
from opsledger.services import wiring

log = logging.getLogger("opsledger")

FINALIZER = f"{API_GROUP}/finalizer"


class CRDsMissingError(RuntimeError):
    """The operator's CustomResourceDefinitions are not installed in the cluster."""


def build_registry(settings: Settings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    servicelevel.register(registry)
    change.register(registry, settings)
    incident.register(registry, settings)
    service_request.register(registry, settings)
    configitem.register(registry, settings)
    health.register(registry, settings)
    servers.register(registry, settings, webhook=admission.serve, receiver=receiver.serve)
    kpi.register(registry)
    report.register(registry)
    views.register(registry)
    leadership.register(registry)

    lifetime = settings.peering_lifetime

    @kopf.on.startup(registry=registry, id="configure")
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Kopf's silent-watch problem: without timeouts a watch can hang forever on a dead
        # connection. Ask the server to end each watch and give up on the client side after.
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = 30
        settings.networking.request_timeout = 60
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.StatusProgressStorage(
            field="status.kopf.progress"
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=API_GROUP, key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING  # our own Events only, not "Handler succeeded"
        settings.posting.reporting_component = "opsledger"
        settings.posting.reporting_instance = socket.gethostname()
        settings.execution.max_workers = 8
        settings.peering.lifetime = lifetime

    @kopf.on.login(registry=registry, id="login")
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """As the identity the settings name (OPSLEDGER_KUBECONFIG), like the operator's own
        client: the webhook tells the operator's writes from anyone else's by it."""
        if not settings.kubeconfig:
            return kopf.login_via_client(**kwargs)
        found = kube.connection(settings.kubeconfig)
        return kopf.ConnectionInfo(
            server=found.server,
            ca_path=found.ca_path,
            insecure=found.insecure,
            certificate_path=found.certificate_path,
            private_key_path=found.private_key_path,
            token=found.token,
            scheme="Bearer" if found.token else None,
        )

    return registry


def check_crds(settings: Settings) -> None:
    """Fail with instructions when the CRDs are not installed: nothing can work without them."""
    api = kube.api_client(settings.kubeconfig)
    try:
        missing = kube.missing_crds(api, [k.crd_name for k in KINDS])
    finally:
        api.close()  # type: ignore[no-untyped-call]
    if missing:
        raise CRDsMissingError(
            "these CustomResourceDefinitions are not installed: "
            + ", ".join(missing)
            + ". Install them with `kubectl apply -f crds/` (or the Helm chart) and start again."
        )


async def run(settings: Settings) -> None:
    """Run the operator until it is stopped."""
    check_crds(settings)
    metrics = Metrics()
    metrics.serve(settings.bind_address, settings.metrics_port)
    log.info(
        "serving /metrics on %s:%d and /healthz on %s:%d",
        settings.bind_address,
        settings.metrics_port,
        settings.bind_address,
        settings.health_port,
    )
    registry = build_registry(settings)
    ctx = wiring.operator_context(settings, metrics)
    memo = kopf.Memo(ctx=ctx)
    await kopf.operator(
        registry=registry,
        memo=memo,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=settings.peering is None,
        peering_name=settings.peering,
        priority=settings.priority,
        identity=cast(Any, ctx.identity),  # Kopf's peering.Identity is a NewType of str
        liveness_endpoint=f"http://{settings.bind_address}:{settings.health_port}/healthz",
    )


def configure_logging(*, verbose: bool) -> None:
    """Kopf's log format: every line about an object names it as [namespace/name]."""
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.FULL, log_prefix=True)


def main(settings: Settings) -> None:
    asyncio.run(run(settings))


def desk(settings: DeskSettings) -> None:
    """`opsledger desk`: the service desk's pages, fed by watches, until interrupted."""
    state = wiring.desk(settings)
    state.cache.start()
    if not state.cache.wait_ready():
        log.warning("the cluster has not answered yet: pages fill in as it does")
    print(f"OpsLedger service desk: http://{settings.bind_address}:{settings.port}/", flush=True)
    try:
        asyncio.run(servers_desk.serve(servers_desk.Desk.of(state)))
    except KeyboardInterrupt:
        pass
    finally:
        state.cache.stop()
