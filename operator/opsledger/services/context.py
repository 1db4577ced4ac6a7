"""What every use case works with: the settings, the adapters and the clock, wired in main.py."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opsledger.adapters.alertmanager import Alertmanager
from opsledger.adapters.forge import Forge
from opsledger.adapters.gitcmdb import GitCMDB
from opsledger.adapters.kube import Kube
from opsledger.adapters.metrics import Metrics
from opsledger.adapters.prometheus import Prometheus
from opsledger.domain.calendars import Loaded
from opsledger.domain.redaction import Redactor
from opsledger.domain.selectors import Selector
from opsledger.domain.views import Views
from opsledger.models.settings import Settings


@dataclass
class Context:
    """What the operator hands every handler through Kopf's memo, and every service."""

    settings: Settings
    metrics: Metrics
    kube: Kube | None = None
    cmdb: GitCMDB | None = None
    redactor: Redactor = field(default_factory=Redactor)
    discovery: Selector | None = None  # set when discovery is configured
    prometheus: Prometheus | None = None
    forge: Forge | None = None  # set when a forge is configured
    alertmanager: Alertmanager | None = None  # set when changes silence their alerts
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    views: Views = field(default_factory=Views)  # the cross-object views (domain/views.py)
    # "namespace/name" → the lock one ConfigurationItem's sync holds, created on first use
    item_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # The namespaces the subresource guard was last told (services/guard_scope.py); None: not
    # yet told.
    guarded_namespaces: frozenset[str] | None = None
    # This replica's identity among Kopf's peers, and whether it leads (services/leadership.py):
    # only the leader runs the loops and carries out changes. Standalone, it always leads.
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}/{os.getpid()}")
    leading: bool = True
    leadership_reason: str = "standalone"
    # (apiVersion, kind) the cluster did not serve when last asked → when to ask again (a kind
    # it does not know makes the client discover every API group again: not every few seconds).
    unserved: dict[tuple[str, str], datetime] = field(default_factory=dict)
    # The shared calendars the ServiceLevels name, as last read (services/calendars.py).
    calendars: dict[str, Loaded] = field(default_factory=dict)
