"""Wiring of the Kopf operator: settings, handler registration, start-up checks. No logic."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import kopf

from opsledger.adapters import kube
from opsledger.adapters.forge import Gitea
from opsledger.adapters.gitcmdb import GitCMDB, credentials_from_env
from opsledger.adapters.metrics import Metrics
from opsledger.adapters.prometheus import Prometheus
from opsledger.domain import selectors
from opsledger.domain.redaction import Redactor
from opsledger.handlers import (
    change,
    configitem,
    health,
    incident,
    kpi,
    report,
    servers,
    servicelevel,
)
from opsledger.models import API_GROUP, KINDS
from opsledger.models.settings import Settings
from opsledger.servers import admission, receiver
from opsledger.services.context import Context

log = logging.getLogger("opsledger")

FINALIZER = f"{API_GROUP}/finalizer"


class CRDsMissingError(RuntimeError):
    """The operator's CustomResourceDefinitions are not installed in the cluster."""


def build_registry(settings: Settings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    servicelevel.register(registry)
    change.register(registry, settings)
    incident.register(registry, settings)
    configitem.register(registry, settings)
    health.register(registry, settings)
    servers.register(registry, settings, webhook=admission.serve, receiver=receiver.serve)
    kpi.register(registry)
    report.register(registry)

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

    @kopf.on.login(registry=registry, id="login")
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

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
    api = kube.api_client(settings.kubeconfig)
    ctx = Context(
        settings=settings,
        metrics=metrics,
        kube=kube.Kube(api),
        cmdb=cmdb_store(settings),
        redactor=Redactor.with_extra(settings.redact_keys, settings.redact_values),
        discovery=selectors.parse(settings.discovery_selector)
        if settings.discovery_kinds
        else None,
        prometheus=Prometheus(settings.prometheus_url) if settings.prometheus_url else None,
        forge=_forge(settings),
    )
    memo = kopf.Memo(ctx=ctx)
    await kopf.operator(
        registry=registry,
        memo=memo,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=settings.peering is None,
        peering_name=settings.peering,
        priority=settings.priority,
        liveness_endpoint=f"http://{settings.bind_address}:{settings.health_port}/healthz",
    )


def cmdb_store(settings: Settings) -> GitCMDB | None:
    """The CMDB store, when a remote is configured; credentials come from mounted files."""
    if not settings.cmdb_url:
        log.warning("OPSLEDGER_CMDB_URL is not set: records are not committed anywhere")
        return None
    workdir = Path(
        settings.cmdb_workdir or Path(tempfile.gettempdir()) / "opsledger-cmdb" / settings.cluster
    )
    return GitCMDB(
        settings.cmdb_url,
        workdir,
        cluster=settings.cluster,
        branch=settings.cmdb_branch,
        credentials=credentials_from_env(os.environ),
        debounce=settings.cmdb_debounce,
        max_batch=settings.cmdb_max_batch,
        author=("OpsLedger", f"opsledger@{settings.cluster}"),
    )


def context_for_cli(
    settings: Settings, *, with_kube: bool, with_prometheus: bool, with_cmdb: bool = False
) -> Context:
    """The Context of one CLI command, with only the adapters it asks for.

    Prometheus and the CMDB store are there only when their URL is set. The caller closes what
    it asked for: the Kubernetes client (`ctx.kube.api.close()`) and the store (`ctx.cmdb.close()`).
    """
    return Context(
        settings=settings,
        metrics=Metrics(),
        kube=kube.Kube(kube.api_client(settings.kubeconfig)) if with_kube else None,
        cmdb=cmdb_store(settings) if with_cmdb else None,
        prometheus=Prometheus(settings.prometheus_url)
        if with_prometheus and settings.prometheus_url
        else None,
    )


def _forge(settings: Settings) -> Gitea | None:
    """The forge's client, when one is configured; its token comes from a mounted file."""
    if settings.forge != "gitea":
        return None
    assert settings.forge_url
    assert settings.forge_repository
    assert settings.forge_token_file
    token = Path(settings.forge_token_file).read_text().strip()
    return Gitea(settings.forge_url, settings.forge_repository, token)


def configure_logging(*, verbose: bool) -> None:
    """Kopf's log format: every line about an object names it as [namespace/name]."""
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.FULL, log_prefix=True)


def main(settings: Settings) -> None:
    asyncio.run(run(settings))
