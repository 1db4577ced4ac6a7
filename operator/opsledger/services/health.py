"""Health, availability, performance and capacity of every ConfigurationItem, on a timer.

One pass lists the items, asks Prometheus one query per template of each class present (plus
one for all items' own checks), and writes each item's status where a figure changed: health
with its evidence and the Healthy condition, availability, latency against the objective,
capacity with the CapacityRisk condition. A resource predicted to run out soon opens one
low-priority Incident per item and resource. When availability changes (to 0.01 %), the
item's CMDB record is written again (status.cmdb.availability says what the record holds).
While Prometheus does not answer, health is Unknown (Healthy=Unknown, PrometheusUnavailable)
and changes on the items wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from opsledger.adapters.prometheus import Prometheus, PrometheusUnavailableError
from opsledger.domain import capacity, health
from opsledger.domain.classes import effective_class
from opsledger.domain.conditions import summarize
from opsledger.domain.durations import go_duration
from opsledger.domain.health import Evaluation, Item, Sample
from opsledger.domain.outcome import ConditionUpdate, Event
from opsledger.domain.times import parse_time, rfc3339
from opsledger.models import CONFIGURATION_ITEM, SERVICE_LEVEL
from opsledger.models.common import ConditionStatus, LatencyObjective
from opsledger.models.configitem import (
    CheckOverride,
    CIClass,
    ConfigurationItemSpec,
    Health,
    Lifecycle,
    Monitoring,
)
from opsledger.models.incident import OriginType
from opsledger.models.settings import Settings
from opsledger.services.context import Context
from opsledger.services.incident_factory import open_incident
from opsledger.services.resync import rerecord
from opsledger.services.status import write_status

log = logging.getLogger(__name__)

PLURAL = CONFIGURATION_ITEM.plural
HEALTHY = "Healthy"
CAPACITY_RISK = "CapacityRisk"
FIELDS = ("health", "healthChecks", "availability", "performance", "capacity")
REFRESH = 5  # status is rewritten at least every REFRESH intervals, even if nothing changed
CONCURRENCY = 16

Templates = dict[CIClass, list[CheckOverride]]


def load_templates(settings: Settings) -> Templates:
    """The default check templates, with the classes a checks file names replaced."""
    templates = health.default_checks(settings.request_metric)
    if settings.health_checks_file:
        path = Path(settings.health_checks_file)
        try:
            given = TypeAdapter(dict[CIClass, list[CheckOverride]]).validate_python(
                yaml.safe_load(path.read_text()) or {}
            )
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise ValueError(
                f"OPSLEDGER_HEALTH_CHECKS_FILE {path}: {exc}. It maps a CI class (Workload, "
                "Node, Service, …) to a list of {name, query, degraded: {below|above}, down: "
                "{below|above}}"
            ) from exc
        templates.update(given)
    return templates


@dataclass
class Pass:
    """What one pass asked and found."""

    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    resources: dict[str, list[capacity.Resource]] = field(default_factory=dict)
    queries: int = 0


def evaluate_items(
    prometheus: Prometheus,
    items: Sequence[Item],
    templates: Templates,
    *,
    settings: Settings,
    now: datetime,
    objectives: Mapping[str, LatencyObjective] | None = None,
) -> Pass:
    """Every item's health, availability, latency and capacity: one query per template of each
    class present, and one for all items' own checks. Raises PrometheusUnavailableError when a
    template query fails (health is unknown then)."""
    objectives = objectives or {}
    result = Pass()
    lookback = _prom_duration(settings.capacity_lookback)
    by_class: dict[CIClass, list[Item]] = {}
    for item in items:
        by_class.setdefault(item.class_, []).append(item)
    for class_, members in by_class.items():
        queries: dict[str, str] = {}
        for t in templates.get(class_, []):
            if any(t.name not in {c.name for c in i.monitoring.checks} for i in members):
                queries[health.check_key(t.name)] = t.query
        signal = health.availability_signal(class_)
        if signal:
            queries["availability"] = health.availability_query(signal)
        if class_ == CIClass.SERVICE:
            wanted = {*health.QUANTILES, *(o.quantile for o in objectives.values())}
            queries["latency"] = health.latency_query(settings.latency_metric, wanted)
        usage = capacity.capacity_query(class_, lookback)
        if usage:
            queries["capacity"] = usage
        answers: dict[str, dict[str, list[Sample]]] = {}
        for key, promql in queries.items():
            result.queries += 1
            answers[key] = health.assign(prometheus.instant(promql, now), members)
        result.resources.update(capacity.by_item(answers.pop("capacity", {}), now))
        custom = _custom(prometheus, [i for i in members if i.monitoring.checks], now, result)
        for item in members:
            result.evaluations[item.key] = health.evaluate_item(
                item,
                templates.get(class_, []),
                answers,
                custom.get(item.key, {}),
                objectives.get(item.key),
            )
    return result


def _custom(
    prometheus: Prometheus, items: Sequence[Item], now: datetime, result: Pass
) -> dict[str, dict[str, list[Sample]]]:
    """The items' own checks in one query; when that fails, check by check, so one wrong query
    shows as that check's NoData (with the error) instead of hiding the others."""
    query = health.custom_query(items)
    if query is None:
        return {}
    result.queries += 1
    try:
        return health.assign_custom(prometheus.instant(query, now))
    except PrometheusUnavailableError:
        pass
    out: dict[str, dict[str, list[Sample]]] = {}
    for item in items:
        for check in item.monitoring.checks:
            result.queries += 1
            try:
                answer = prometheus.instant(check.query, now)
            except PrometheusUnavailableError as exc:
                log.warning("check %s of %s failed: %s", check.name, item.key, exc)
                continue
            out.setdefault(item.key, {})[check.name] = [
                (s.get("metric") or {}, health.value_of(s)) for s in answer
            ]
    return out


def _prom_duration(go: str) -> str:
    """A Go duration as PromQL writes it (whole seconds)."""
    return f"{max(1, int(go_duration(go).total_seconds()))}s"


def parse_item(obj: Mapping[str, Any]) -> Item | None:
    """The item to evaluate, or None: invalid spec, retired, or monitoring disabled."""
    meta = obj.get("metadata") or {}
    try:
        spec = ConfigurationItemSpec.model_validate(obj.get("spec") or {})
    except ValueError:
        return None
    monitoring = spec.monitoring or Monitoring()
    if (
        spec.lifecycle == Lifecycle.RETIRED
        or not monitoring.enabled
        or meta.get("deletionTimestamp")
    ):
        return None
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    class_ = effective_class(spec.class_, spec.source.kind if spec.source else None)
    return Item(
        namespace=namespace,
        name=name,
        class_=class_,
        match=health.identity(namespace, name, class_, spec.source, monitoring),
        monitoring=monitoring,
        service=spec.service,
    )


def service_objectives(
    levels: Sequence[Mapping[str, Any]],
) -> dict[tuple[str, str], LatencyObjective]:
    """Each (namespace, service)'s latency objective, from its ServiceLevel's spec.latency."""
    out = {}
    for level in levels:
        meta, spec = level.get("metadata") or {}, level.get("spec") or {}
        if spec.get("latency") and spec.get("service"):
            try:
                objective = LatencyObjective.model_validate(spec["latency"])
            except ValidationError as exc:  # the CRD schema admits only valid ones
                log.warning("ServiceLevel %s/%s: %s", meta.get("namespace"), meta.get("name"), exc)
                continue
            out[(str(meta.get("namespace")), str(spec["service"]))] = objective
    return out


def latency_objectives(
    items: Sequence[Item], by_service: Mapping[tuple[str, str], LatencyObjective]
) -> dict[str, LatencyObjective]:
    """Each item's latency objective: its own, else its service's."""
    out = {}
    for item in items:
        objective = item.monitoring.latency or by_service.get((item.namespace, item.service or ""))
        if objective is not None:
            out[item.key] = objective
    return out


# -- writing -------------------------------------------------------------------------------


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


def _capacity_condition(
    resources: list[capacity.Resource] | None, risk: capacity.Risk | None, horizon: str
) -> tuple[ConditionStatus, str, str] | None:
    if resources is None:
        return None
    if not resources:
        return (
            ConditionStatus.UNKNOWN,
            "NoData",
            "no usage series for cpu, memory or storage",
        )
    if risk and risk.at_risk:
        return ConditionStatus.TRUE, "ExhaustionPredicted", risk.message
    return (
        ConditionStatus.FALSE,
        "NoRiskWithinHorizon",
        f"no resource is predicted to run out within {horizon}",
    )


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
    changed = summary.changed or any(previous.get(k) != v for k, v in fields.items())
    evaluated = parse_time(previous.get("evaluatedAt"))
    stale = evaluated is None or now - evaluated > timedelta(
        seconds=REFRESH * ctx.settings.health_interval
    )
    if not changed and not stale:
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
        risky = _capacity_condition(resources, risk, settings.capacity_horizon)
        if risky is not None:
            conditions.append((CAPACITY_RISK, *risky))
        writes.append((obj, fields, conditions))
        cmdb = (obj.get("status") or {}).get("cmdb")
        if cmdb and e.availability and e.availability != cmdb.get("availability"):
            rerecords.append((item, e.availability))
        for resource in risk.near:
            await _capacity_incident(ctx, state, obj, item, resource=resource, now=now)
    await _write_all(ctx, writes, now)
    await _service_figures(ctx, levels, items, found, by_service)
    await _rerecord_all(ctx, rerecords)
    state.last_queries = found.queries
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


async def _capacity_incident(
    ctx: Context,
    state: Loop,
    obj: Mapping[str, Any],
    item: Item,
    *,
    resource: capacity.Resource,
    now: datetime,
) -> None:
    """One low-priority Incident per item and resource, named so it is never duplicated."""
    assert ctx.kube is not None
    name = capacity.incident_name(item.name, resource.resource)
    if f"{item.namespace}/{name}" in state.opened:
        return
    created = await asyncio.to_thread(
        open_incident,
        ctx.kube,
        item.namespace,
        name,
        origin=OriginType.CAPACITY,
        reference=f"{item.name}/{resource.resource}",
        labels={
            "opsledger.io/configurationitem": item.name,
            "opsledger.io/resource": resource.resource,
        },
        spec=capacity.incident_spec(
            item=item.name, service=item.service, resource=resource, now=now
        ),
    )
    state.opened.add(f"{item.namespace}/{name}")
    if created:
        await asyncio.to_thread(
            ctx.kube.post_event,
            obj,
            type="Warning",
            reason="CapacityIncident",
            message=f"Incident {name} opened: {capacity.describe(resource)}",
            component="opsledger",
        )
