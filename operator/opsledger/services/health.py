"""Health, availability, performance and capacity of every ConfigurationItem, on a timer.

One pass lists the items, asks Prometheus one query per template of each class present (plus
one for all items' own checks), and writes each item's status where a figure changed: health
with its evidence and the Healthy condition, availability, latency against the objective,
capacity with the CapacityRisk condition. A resource predicted to run out soon opens one
low-priority Incident per item and resource. When availability changes (to 0.01 %), the
item's CMDB record is written again (status.cmdb.availability says what the record holds).
While Prometheus does not answer, health is Unknown (Healthy=Unknown, PrometheusUnavailable)
and changes on the items wait.

This module holds the pass and its status writes; the batched queries and the parsing of items
are in `health_queries`, the CapacityRisk condition and capacity Incidents in `health_capacity`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsledger.adapters.prometheus import PrometheusUnavailableError
from opsledger.domain import capacity, health
from opsledger.domain.conditions import summarize
from opsledger.domain.durations import go_duration
from opsledger.domain.health import Evaluation, Item
from opsledger.domain.outcome import ConditionUpdate, Event
from opsledger.domain.times import rfc3339
from opsledger.models import CONFIGURATION_ITEM, SERVICE_LEVEL
from opsledger.models.common import ConditionStatus, LatencyObjective
from opsledger.models.configitem import Health
from opsledger.services.context import Context
from opsledger.services.health_capacity import capacity_condition, capacity_incident
from opsledger.services.health_queries import (
    Pass,
    Templates,
    evaluate_items,
    latency_objectives,
    load_templates,
    parse_item,
    service_objectives,
)
from opsledger.services.resync import rerecord
from opsledger.services.status import write_status

__all__ = ["Loop", "Pass", "Templates", "evaluate_once", "load_templates"]

log = logging.getLogger(__name__)

PLURAL = CONFIGURATION_ITEM.plural
HEALTHY = "Healthy"
CAPACITY_RISK = "CapacityRisk"
FIELDS = ("health", "healthChecks", "availability", "performance", "capacity")
CONCURRENCY = 16


def _healthy_condition(e: Evaluation) -> tuple[ConditionStatus, str, str]:
    message = health.evidence(e.checks)
    if e.health == Health.HEALTHY:
        return ConditionStatus.TRUE, "Healthy", message
    if e.health == Health.UNKNOWN:
        return (
            ConditionStatus.UNKNOWN,
            "NoData",
            f"{message}; an item without signals does not hold changes (their own checks do)",
        )
    return ConditionStatus.FALSE, e.health.value, message


def _status(
    ctx: Context,
    obj: Mapping[str, Any],
    fields: Mapping[str, Any],
    conditions: Sequence[tuple[str, ConditionStatus, str, str]],
    now: datetime,
) -> tuple[dict[str, Any] | None, list[Event]]:
    """The status patch (None when nothing changed and status is fresh) and the Events."""
    previous = obj.get("status") or {}
    summary = summarize(
        CONFIGURATION_ITEM.kind,
        previous.get("conditions"),
        [ConditionUpdate(*c) for c in conditions],
        now=now,
        generation=(obj.get("metadata") or {}).get("generation"),
    )
    events = summary.events
    # A status that has not changed is not written (at 10,000 items a rewrite each pass was
    # about 170 writes a second, each a watch event): opsledger_health_last_evaluation says
    # when the figures were last measured, evaluatedAt when they last changed.
    changed = summary.changed or any(previous.get(k) != v for k, v in fields.items())
    if not changed:
        return None, events
    return {**fields, "evaluatedAt": rfc3339(now), "conditions": summary.wire()}, events


@dataclass
class Loop:
    """State kept between passes: incidents already opened (so they are asked for once)."""

    opened: set[str] = field(default_factory=set)
    last_queries: int = 0


async def evaluate_once(ctx: Context, templates: Templates, state: Loop | None = None) -> Pass:
    """One pass over every item; returns what it asked and found."""
    state = state or Loop()
    if ctx.kube is None or ctx.prometheus is None:
        return Pass()
    kube, prometheus, settings = ctx.kube, ctx.prometheus, ctx.settings
    objects = await asyncio.to_thread(kube.list_custom, PLURAL)
    if settings.namespaces:  # an operator limited to namespaces evaluates only theirs
        objects = [
            o for o in objects if (o.get("metadata") or {}).get("namespace") in settings.namespaces
        ]
    pairs = [(obj, parse_item(obj)) for obj in objects]
    items = [i for _, i in pairs if i is not None]
    if not items:
        return Pass()
    levels = await asyncio.to_thread(kube.list_custom, SERVICE_LEVEL.plural)
    by_service = service_objectives(levels)
    now = ctx.clock()
    started = time.monotonic()
    try:
        found = await asyncio.to_thread(
            functools.partial(
                evaluate_items,
                settings=settings,
                now=now,
                objectives=latency_objectives(items, by_service),
            ),
            prometheus,
            items,
            templates,
        )
    except PrometheusUnavailableError as exc:
        unknown = (
            HEALTHY,
            ConditionStatus.UNKNOWN,
            "PrometheusUnavailable",
            f"{exc}. Health is unknown until it answers; changes on this item wait.",
        )
        await _write_all(
            ctx,
            [(obj, {"health": Health.UNKNOWN.value}, [unknown]) for obj, i in pairs if i],
            now,
        )
        return Pass()
    log.info(
        "health: %d items evaluated with %d PromQL queries in %.1fs",
        len(items),
        found.queries,
        time.monotonic() - started,
    )
    horizon = go_duration(settings.capacity_horizon)
    near = go_duration(settings.capacity_incident_within)
    writes = []
    rerecords = []
    for obj, item in pairs:
        if item is None:
            continue
        e = found.evaluations[item.key]
        resources = found.resources.get(item.key)
        if resources is None and capacity.capacity_query(item.class_, "1s") is not None:
            resources = []
        risk = capacity.risk(resources or [], now, horizon, near)
        fields = {
            "health": e.health.value,
            "healthChecks": [c.to_wire() for c in e.checks],
            "availability": e.availability,
            "performance": e.performance,
            "capacity": [r.to_wire() for r in resources or []],
        }
        healthy = _healthy_condition(e)
        conditions = [(HEALTHY, *healthy)]
        risky = capacity_condition(resources, risk, settings.capacity_horizon)
        if risky is not None:
            conditions.append((CAPACITY_RISK, *risky))
        writes.append((obj, fields, conditions))
        cmdb = (obj.get("status") or {}).get("cmdb")
        if cmdb and e.availability and e.availability != cmdb.get("availability"):
            rerecords.append((item, e.availability))
        for resource in risk.near:
            await capacity_incident(ctx, state.opened, obj, item, resource=resource, now=now)
    await _write_all(ctx, writes, now)
    await _service_figures(ctx, levels, items, found, by_service)
    await _rerecord_all(ctx, rerecords)
    state.last_queries = found.queries
    ctx.metrics.health_evaluated.set(now.timestamp())
    return found


async def _rerecord_all(
    ctx: Context, rerecords: Sequence[tuple[Item, Mapping[str, float]]]
) -> None:
    """Write again the records whose availability changed."""
    if ctx.cmdb is None or not rerecords:
        return
    gate = asyncio.Semaphore(ctx.settings.cmdb_max_batch)

    async def record(item: Item, availability: Mapping[str, float]) -> None:
        async with gate:
            figures = ", ".join(f"{w} {v:g} %" for w, v in availability.items())
            await rerecord(
                ctx,
                item.namespace,
                item.name,
                reason=f"ConfigurationItem {item.key}: availability {figures}",
            )

    await asyncio.gather(*(record(i, a) for i, a in rerecords))


async def _service_figures(
    ctx: Context,
    levels: list[dict[str, Any]],
    items: Sequence[Item],
    found: Pass,
    objectives: Mapping[tuple[str, str], LatencyObjective],
) -> None:
    """Each ServiceLevel's status gets its service's availability and latency (from its
    items')."""
    assert ctx.kube is not None
    by_namespace: dict[str, list[tuple[str | None, Evaluation | None]]] = {}
    for item in items:
        by_namespace.setdefault(item.namespace, []).append(
            (item.service, found.evaluations.get(item.key))
        )
    for level in levels:
        meta = level.get("metadata") or {}
        namespace, service = str(meta.get("namespace")), (level.get("spec") or {}).get("service")
        parts = by_namespace.get(namespace, [])
        figures = {
            "availability": health.service_availability(
                (s, e.availability if e else None) for s, e in parts
            ).get(service or ""),
            "performance": health.service_performance(
                ((s, e.performance if e else None) for s, e in parts),
                {s: o for (ns, s), o in objectives.items() if ns == namespace},
            ).get(service or ""),
        }
        status = level.get("status") or {}
        changed = {k: v for k, v in figures.items() if v and v != status.get(k)}
        if changed:
            with contextlib.suppress(LookupError):
                await asyncio.to_thread(
                    ctx.kube.patch_status,
                    SERVICE_LEVEL.plural,
                    str(meta.get("name")),
                    namespace,
                    changed,
                )


async def _write_all(
    ctx: Context,
    writes: Sequence[
        tuple[Mapping[str, Any], Mapping[str, Any], Sequence[tuple[str, ConditionStatus, str, str]]]
    ],
    now: datetime,
) -> None:
    assert ctx.kube is not None
    kube = ctx.kube
    gate = asyncio.Semaphore(CONCURRENCY)

    async def write(
        obj: Mapping[str, Any],
        fields: Mapping[str, Any],
        conditions: Sequence[tuple[str, ConditionStatus, str, str]],
    ) -> None:
        async with gate:
            await write_status(
                kube, PLURAL, obj, lambda fresh: _status(ctx, fresh, fields, conditions, now)
            )

    await asyncio.gather(*(write(*w) for w in writes))
