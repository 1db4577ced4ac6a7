"""ServiceLevel handlers: the spec reconciler (Ready, then the PrometheusRule beside it) and
the evaluation loop started with the operator; the work is in services/servicelevel.py."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

import kopf

from opsledger.handlers.common import every, in_background, register_spec_reconciler
from opsledger.models import SERVICE_LEVEL
from opsledger.services import (
    calendars,
    deploy_windows,
    freezes,
    servicelevel,
    servicelevel_rules,
)
from opsledger.services.context import Context

log = logging.getLogger("opsledger")
FREEZE_INTERVAL = 5.0  # seconds between looks at which CronJobs a freeze covers
CALENDAR_INTERVAL = 10.0  # seconds between reads of the shared calendars


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach the ServiceLevel handlers to `registry`."""
    register_spec_reconciler(SERVICE_LEVEL, registry, then=servicelevel_rules.publish)

    def start(ctx: Context) -> Coroutine[Any, Any, None] | None:
        if ctx.prometheus is None:
            log.warning("OPSLEDGER_PROMETHEUS_URL is not set: ServiceLevels are not measured")
            return None
        return every(
            ctx.settings.slo_interval,
            "ServiceLevel evaluation",
            lambda: servicelevel.evaluate_once(ctx),
            when=lambda: ctx.leading,
        )

    in_background(registry, "slo-evaluation", start)
    # CronJobs of a frozen service are suspended for the freeze (domain/freezes.py).
    in_background(
        registry,
        "freeze-cronjobs",
        lambda ctx: every(
            FREEZE_INTERVAL,
            "suspending CronJobs for freezes",
            lambda: freezes.keep_cronjobs(ctx),
            when=lambda: ctx.leading,
        ),
    )
    # Every replica reads the shared calendars (the webhook's denials need them too) and says
    # which services are held (opsledger_change_freeze_active).
    in_background(
        registry,
        "calendars",
        lambda ctx: every(
            CALENDAR_INTERVAL, "reading the shared calendars", lambda: calendars.keep(ctx)
        ),
    )
    # Argo CD AppProjects and Flux Kustomizations that opt in follow the calendar.
    in_background(
        registry,
        "deploy-windows",
        lambda ctx: every(
            CALENDAR_INTERVAL,
            "carrying the change calendar to Argo CD and Flux",
            lambda: deploy_windows.keep(ctx),
            when=lambda: ctx.leading,
        ),
    )
