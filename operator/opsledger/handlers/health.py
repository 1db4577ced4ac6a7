"""Item health, availability, latency and capacity: a background loop started with the
operator (the work is in services/health.py)."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

import kopf

from opsledger.handlers.common import every, in_background
from opsledger.models.settings import Settings
from opsledger.services import health
from opsledger.services.context import Context

log = logging.getLogger("opsledger")


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Start the evaluation loop with the operator (when Prometheus is configured)."""
    templates = health.load_templates(
        settings
    )  # a wrong checks file stops the start, with the reason

    def start(ctx: Context) -> Coroutine[Any, Any, None] | None:
        if ctx.prometheus is None:
            log.warning("OPSLEDGER_PROMETHEUS_URL is not set: item health is not measured")
            return None
        state = health.Loop()
        return every(
            ctx.settings.health_interval,
            "health evaluation",
            lambda: health.evaluate_once(ctx, templates, state),
            when=lambda: ctx.leading,
        )

    in_background(registry, "health-evaluation", start)
