"""KPIs at /metrics, recomputed every kpi_interval while the operator runs (the work is in
services/kpi.py)."""

from __future__ import annotations

import kopf

from opsledger.handlers.common import every, in_background
from opsledger.services import kpi


def register(registry: kopf.OperatorRegistry) -> None:
    """Keep the KPI gauges current while the operator runs."""
    in_background(
        registry,
        "kpis",
        lambda ctx: every(
            ctx.settings.kpi_interval, "computing the KPIs", lambda: kpi.compute_once(ctx)
        ),
    )
