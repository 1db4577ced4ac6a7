"""Capacity: usage against requests, limits and allocatable, and when each resource runs out.

One query per class answers every item: each series is tagged with the resource (cpu, memory,
storage) and the measure (usage, requests, limits, capacity, fit, slope). The forecast is a
least-squares line over the look-back: `deriv` gives its slope and `predict_linear(…, 0)` its
value now (the same fit), so a resource runs out at now + (capacity − fit) / slope when the
slope is positive. What runs out: a workload's limits, a node's allocatable, a volume's size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsledger.domain.health import (
    STEP,
    WORKLOAD_CLASSES,
    Sample,
    per_workload,
    round_to,
)
from opsledger.domain.times import stamp
from opsledger.models.configitem import CIClass

RESOURCE_LABEL = "opsledger_resource"
MEASURE_LABEL = "opsledger_measure"
DAY = 86400.0

CPU_USAGE = 'rate(container_cpu_usage_seconds_total{container!=""}[5m])'
MEMORY_USAGE = 'container_memory_working_set_bytes{container!=""}'


def _resources(class_: CIClass) -> dict[str, dict[str, str]] | None:
    """{resource: {measure: PromQL}} for a class (None: no capacity signals)."""
    if class_ in WORKLOAD_CLASSES:
        return {
            resource: {
                "usage": per_workload("sum", usage),
                "requests": per_workload(
                    "sum", f'kube_pod_container_resource_requests{{resource="{resource}"}}'
                ),
                "limits": per_workload(
                    "sum", f'kube_pod_container_resource_limits{{resource="{resource}"}}'
                ),
            }
            for resource, usage in (("cpu", CPU_USAGE), ("memory", MEMORY_USAGE))
        }
    if class_ == CIClass.NODE:
        return {
            resource: {
                "usage": f"sum by (node) ({usage})",
                "requests": (
                    f'sum by (node) (kube_pod_container_resource_requests{{resource="{resource}"}})'
                ),
                "capacity": (
                    f'max by (node) (kube_node_status_allocatable{{resource="{resource}"}})'
                ),
            }
            for resource, usage in (("cpu", CPU_USAGE), ("memory", MEMORY_USAGE))
        }
    if class_ == CIClass.STORAGE:
        by = "sum by (namespace, persistentvolumeclaim)"
        return {
            "storage": {
                "usage": f"{by} (kubelet_volume_stats_used_bytes)",
                "capacity": f"{by} (kubelet_volume_stats_capacity_bytes)",
            }
        }
    return None


def capacity_query(class_: CIClass, lookback: str) -> str | None:
    """Every measure of every resource of the class's items, plus the trend of usage."""
    resources = _resources(class_)
    if resources is None:
        return None
    parts = []
    for resource, measures in resources.items():
        usage = measures["usage"]
        trend = {
            "fit": f"predict_linear(({usage})[{lookback}:{STEP}], 0)",
            "slope": f"deriv(({usage})[{lookback}:{STEP}])",
        }
        for measure, expr in {**measures, **trend}.items():
            tagged = f'label_replace(({expr}), "{RESOURCE_LABEL}", "{resource}", "", "")'
            parts.append(f'label_replace({tagged}, "{MEASURE_LABEL}", "{measure}", "", "")')
    return " or ".join(parts)


@dataclass(frozen=True)
class Resource:
    """One resource of one item, as status shows it."""

    resource: str
    usage: float | None
    requests: float | None
    limits: float | None
    capacity: float | None
    slope: float | None  # per second
    exhausted_at: datetime | None

    @property
    def utilization(self) -> float | None:
        if self.usage is None or not self.capacity:
            return None
        return 100 * self.usage / self.capacity

    def to_wire(self) -> dict[str, object]:
        def r(v: float | None) -> float | None:
            return None if v is None else round_to(v)

        wire: dict[str, object] = {
            "resource": self.resource,
            "usage": r(self.usage),
            "requests": r(self.requests),
            "limits": r(self.limits),
            "capacity": r(self.capacity),
            "utilization": None if self.utilization is None else round(self.utilization, 2),
            "trendPerDay": r(None if self.slope is None else self.slope * DAY),
            "exhaustedAt": stamp(self.exhausted_at),
        }
        return {k: v for k, v in wire.items() if v is not None}


def exhaustion(
    fit: float | None, slope: float | None, capacity: float | None, now: datetime
) -> datetime | None:
    """When the fitted line reaches `capacity` (now if it has already); None if it never does."""
    if fit is None or slope is None or not capacity or capacity <= 0:
        return None
    if fit >= capacity:
        return now
    if slope <= 0:
        return None
    seconds = (capacity - fit) / slope
    if seconds > 100 * 365 * DAY:
        return None
    return now + timedelta(seconds=seconds)


def resources_of(samples: Iterable[Sample], now: datetime) -> list[Resource]:
    """The item's resources from its tagged series (workloads: limits are what runs out)."""
    measures: dict[str, dict[str, float]] = {}
    for labels, value in samples:
        resource, measure = labels.get(RESOURCE_LABEL), labels.get(MEASURE_LABEL)
        if resource and measure and math.isfinite(value):
            measures.setdefault(resource, {})[measure] = value
    out = []
    for resource in sorted(measures):
        m = measures[resource]
        capacity = m.get("capacity", m.get("limits"))
        out.append(
            Resource(
                resource=resource,
                usage=m.get("usage"),
                requests=m.get("requests"),
                limits=m.get("limits"),
                capacity=capacity,
                slope=m.get("slope"),
                exhausted_at=exhaustion(m.get("fit"), m.get("slope"), capacity, now),
            )
        )
    return out


@dataclass(frozen=True)
class Risk:
    """The CapacityRisk verdict: the resources predicted to run out within the horizon."""

    at_risk: list[Resource]
    near: list[Resource]  # within the incident threshold

    @property
    def message(self) -> str:
        return "; ".join(describe(r) for r in self.at_risk)


def risk(
    resources: Iterable[Resource], now: datetime, horizon: timedelta, incident_within: timedelta
) -> Risk:
    soonest = sorted(
        (r for r in resources if r.exhausted_at is not None), key=lambda r: r.exhausted_at or now
    )
    at_risk = [r for r in soonest if r.exhausted_at and r.exhausted_at - now <= horizon]
    near = [r for r in at_risk if r.exhausted_at and r.exhausted_at - now <= incident_within]
    return Risk(at_risk, near)


UNITS = {"cpu": "cores", "memory": "bytes", "storage": "bytes"}


def _amount(resource: str, value: float) -> str:
    if resource == "cpu":
        return f"{value:.3g} cores"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f} B"


def describe(r: Resource) -> str:
    """ "storage runs out around 2026-11-03T10:00Z: 80 GiB of 100 GiB, +10 GiB/day"."""
    when = r.exhausted_at.strftime("%Y-%m-%dT%H:%MZ") if r.exhausted_at else "never"
    usage = _amount(r.resource, r.usage) if r.usage is not None else "?"
    capacity = _amount(r.resource, r.capacity) if r.capacity is not None else "?"
    growth = (
        f", +{_amount(r.resource, r.slope * DAY)}/day"
        if r.slope is not None and r.slope > 0
        else ""
    )
    return f"{r.resource} runs out around {when}: {usage} of {capacity}{growth}"


def incident_name(item: str, resource: str) -> str:
    """The one capacity Incident per item and resource (never duplicated)."""
    return f"capacity-{item}-{resource}"[:253]


def incident_spec(
    *, item: str, service: str | None, resource: Resource, now: datetime
) -> dict[str, object]:
    """A low-priority Incident: the resource runs out soon, nothing is broken yet."""
    days = ((resource.exhausted_at or now) - now).total_seconds() / DAY
    spec: dict[str, object] = {
        "title": f"{item}: {resource.resource} predicted to run out in {days:.1f} days"[:200],
        "description": describe(resource)
        + ". Forecast from the usage trend; add capacity or reduce usage before then.",
        "configurationItems": [item],
        "impact": "low",
        "urgency": "medium",
        "origin": {"type": "capacity", "reference": f"{item}/{resource.resource}"},
    }
    if service:
        spec["service"] = service
    return spec


def by_item(samples: Mapping[str, list[Sample]], now: datetime) -> dict[str, list[Resource]]:
    return {key: resources_of(s, now) for key, s in samples.items()}
