"""KPIs at /metrics: every kpi_interval the Incidents and Changes are read and the figures set.

The figures are gauges recomputed from the objects (not counters kept in memory), so they are
right after a restart and agree with what `kubectl get` shows.
"""

from __future__ import annotations

import asyncio
import math

from opsledger.adapters.metrics import Metrics
from opsledger.domain.durations import go_duration
from opsledger.domain.kpi import Kpis, change_fact, compute, incident_fact
from opsledger.models import CHANGE, INCIDENT
from opsledger.services.context import Context


def _number(value: float | None) -> float:
    return math.nan if value is None else value


def publish(metrics: Metrics, kpis: Kpis, window_seconds: float) -> None:
    """Set every KPI gauge (all label values, zeros included, so series never go stale)."""
    metrics.kpi_window.set(window_seconds)
    for priority, count in kpis.open_incidents.items():
        metrics.incidents_open.labels(priority).set(count)
        metrics.incidents_opened.labels(priority).set(kpis.incidents_by_priority.get(priority, 0))
        metrics.time_to_acknowledge.labels(priority).set(
            _number(kpis.mean_time_to_acknowledge[priority])
        )
        metrics.time_to_resolve.labels(priority).set(_number(kpis.mean_time_to_resolve[priority]))
    for (priority, target), count in kpis.sla_breaches.items():
        metrics.sla_breaches.labels(priority, target).set(count)
    for (type_, outcome), count in kpis.change_outcomes.items():
        metrics.change_outcomes.labels(type_, outcome).set(count)
    metrics.deployment_frequency.set(kpis.deployments_per_day)
    metrics.lead_time.set(_number(kpis.lead_time))
    metrics.change_failure_rate.set(_number(kpis.change_failure_rate))
    metrics.time_to_restore.set(_number(kpis.time_to_restore))


async def compute_once(ctx: Context) -> Kpis | None:
    if ctx.kube is None:
        return None
    incidents = await asyncio.to_thread(ctx.kube.list_custom, INCIDENT.plural)
    changes = await asyncio.to_thread(ctx.kube.list_custom, CHANGE.plural)
    window = go_duration(ctx.settings.kpi_window)
    kpis = compute(
        [f for o in incidents if (f := incident_fact(o)) is not None],
        [c for o in changes if (c := change_fact(o)) is not None],
        now=ctx.clock(),
        window=window,
    )
    publish(ctx.metrics, kpis, window.total_seconds())
    return kpis
