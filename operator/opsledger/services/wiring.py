"""Settings -> adapters -> Context: the one place the adapters are built, for the operator
(main.py) and for the CLI's commands, which must not pay for importing Kopf and the handlers."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from opsledger.adapters import kube
from opsledger.adapters.alertmanager import Alertmanager
from opsledger.adapters.forge import Gitea
from opsledger.adapters.gitcmdb import GitCMDB, credentials_from_env
from opsledger.adapters.metrics import Metrics
from opsledger.adapters.prometheus import Prometheus
from opsledger.domain import selectors
from opsledger.domain.redaction import Redactor
from opsledger.models.settings import DeskSettings, Settings
from opsledger.services.context import Context
from opsledger.services.desk import BudgetHistory, DeskApp, DeskCache, RecordHistory

log = logging.getLogger("opsledger")


def operator_context(settings: Settings, metrics: Metrics) -> Context:
    """Everything the running operator works with."""
    return Context(
        settings=settings,
        metrics=metrics,
        kube=kube.Kube(kube.api_client(settings.kubeconfig)),
        cmdb=cmdb_store(settings),
        redactor=redactor(settings),
        discovery=selectors.parse(settings.discovery_selector)
        if settings.discovery_kinds
        else None,
        prometheus=Prometheus(settings.prometheus_url) if settings.prometheus_url else None,
        forge=forge(settings),
        alertmanager=Alertmanager(settings.alertmanager_url)
        if settings.alertmanager_url and settings.change_silences
        else None,
        # With peers, nothing that writes runs before the replica is judged the leader.
        leading=settings.peering is None,
        leadership_reason="standalone" if settings.peering is None else "not judged yet",
    )


def cli_context(
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


def redactor(settings: Settings) -> Redactor:
    """The one redactor, its fingerprints keyed by the mounted secret (or the cluster's name)."""
    key = settings.cluster.encode()
    if settings.redaction_key_file:
        key = Path(settings.redaction_key_file).read_bytes().strip()
    return Redactor.with_extra(settings.redact_keys, settings.redact_values, key)


def forge(settings: Settings) -> Gitea | None:
    """The forge's client, when one is configured; its token comes from a mounted file."""
    if settings.forge != "gitea":
        return None
    assert settings.forge_url
    assert settings.forge_repository
    assert settings.forge_token_file
    token = Path(settings.forge_token_file).read_text().strip()
    return Gitea(settings.forge_url, settings.forge_repository, token)


def desk(settings: DeskSettings) -> DeskApp:
    """The service desk's state: its cache of the cluster (not yet following) and its secret."""
    secret = (
        Path(settings.secret_file).read_bytes().strip() if settings.secret_file else os.urandom(32)
    )
    if settings.secret_file and len(secret) < 16:
        raise ValueError(f"{settings.secret_file}: the desk's secret needs 16 bytes or more")
    history = None
    if settings.cmdb_url:
        workdir = Path(tempfile.gettempdir()) / "opsledger-desk-cmdb" / settings.cluster
        clone = GitCMDB(
            settings.cmdb_url,
            workdir,
            cluster=settings.cluster,
            branch=settings.cmdb_branch,
            credentials=credentials_from_env(os.environ),
        )
        history = RecordHistory(clone)
    budgets = (
        BudgetHistory(Prometheus(settings.prometheus_url)) if settings.prometheus_url else None
    )
    cache = DeskCache(kube.Kube(kube.api_client(settings.kubeconfig)))
    return DeskApp(settings, cache, secret, history, budgets)
