"""Health, availability and performance of configuration items from batched PromQL.

Every signal is a *template*: one PromQL query that answers for every item of a class at once,
each series carrying the labels that identify its object (kube-state-metrics and cAdvisor
names). Items are matched to series by those labels, so 1,000 items cost one query per
template, never one per item. Identity labels per class:

| class                          | labels                                  |
| ------------------------------ | --------------------------------------- |
| Workload, Application, Database| namespace, workload (Kind/name)         |
| Node                           | node                                    |
| Service                        | namespace, service                      |
| Storage                        | namespace, persistentvolumeclaim        |

Workload series are attributed by pod name (`<deployment>-<hash>-<id>`, `<statefulset>-<n>`,
`<daemonset>-<id>`), as kube-state-metrics' own dashboards do. An item's `monitoring.match`
replaces its identity labels; `monitoring.checks` adds checks of its own, batched into one
more query for all items. A check with no series is NoData and not judged: an item is Unknown
only when none of its checks has data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsledger.domain.durations import go_duration
from opsledger.domain.promql import embedded, union
from opsledger.models.common import LatencyObjective, ObjectReference
from opsledger.models.configitem import (
    CheckOverride,
    CheckResult,
    CIClass,
    Health,
    Monitoring,
    Threshold,
)

WORKLOAD_CLASSES = (CIClass.WORKLOAD, CIClass.APPLICATION, CIClass.DATABASE)
IDENTITY: dict[CIClass, tuple[str, ...]] = {
    **dict.fromkeys(WORKLOAD_CLASSES, ("namespace", "workload")),
    CIClass.NODE: ("node",),
    CIClass.SERVICE: ("namespace", "service"),
    CIClass.STORAGE: ("namespace", "persistentvolumeclaim"),
}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# label_replace regexes are anchored: a Deployment's pods are <name>-<pod-template-hash>-<id>.
POD_PATTERNS = (
    ("Deployment", "(.+)-[a-z0-9]{6,10}-[a-z0-9]{5}"),
    ("StatefulSet", "(.+)-[0-9]+"),
    ("DaemonSet", "(.+)-[a-z0-9]{5}"),
)
AVAILABILITY_WINDOWS = ("1d", "7d", "30d")
QUANTILES = (0.5, 0.9, 0.99)
STEP = "5m"  # subquery resolution of availability and trends
CUSTOM = "custom"
WINDOW_LABEL = "opsledger_window"
QUANTILE_LABEL = "opsledger_quantile"
ITEM_LABEL = "opsledger_ci"
CHECK_LABEL = "opsledger_check"


@dataclass(frozen=True)
class Item:
    """One configuration item as evaluation sees it."""

    namespace: str
    name: str
    class_: CIClass
    match: Mapping[str, str]
    monitoring: Monitoring
    service: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def identity(
    namespace: str,
    name: str,
    class_: CIClass,
    source: ObjectReference | None,
    monitoring: Monitoring | None,
) -> dict[str, str]:
    """The labels that identify the item's series: from its source (or, without one, its own
    name), replaced by monitoring.match where that sets them."""
    target = source.name if source else name
    labels: dict[str, str] = {}
    if class_ in WORKLOAD_CLASSES:
        kind = source.kind if source and source.kind in WORKLOAD_KINDS else None
        kind = kind or ("StatefulSet" if class_ == CIClass.DATABASE else "Deployment")
        labels = {"namespace": namespace, "workload": f"{kind}/{target}"}
    elif class_ == CIClass.NODE:
        labels = {"node": target}
    elif class_ == CIClass.SERVICE:
        labels = {"namespace": namespace, "service": target}
    elif class_ == CIClass.STORAGE:
        labels = {"namespace": namespace, "persistentvolumeclaim": target}
    return {**labels, **(monitoring.match if monitoring else {})}


# -- PromQL building blocks ----------------------------------------------------------------


def per_workload(aggregation: str, expr: str) -> str:
    """`expr` (pod-level series) aggregated per workload, named Kind/name by its pods' names."""
    parts = [
        f"{aggregation} by (namespace, workload) "
        f'(label_replace({expr}, "workload", "{kind}/$1", "pod", "{regex}"))'
        for kind, regex in POD_PATTERNS
    ]
    return "(" + " or ".join(parts) + ")"


def _by_kind(metric: str, kind: str, label: str) -> str:
    return (
        f"sum by (namespace, workload) "
        f'(label_replace({metric}, "workload", "{kind}/$1", "{label}", "(.+)"))'
    )


# (kind, label, ready metric, desired metric) in kube-state-metrics
REPLICA_METRICS = (
    (
        "Deployment",
        "deployment",
        "kube_deployment_status_replicas_available",
        "kube_deployment_spec_replicas",
    ),
    (
        "StatefulSet",
        "statefulset",
        "kube_statefulset_status_replicas_ready",
        "kube_statefulset_replicas",
    ),
    (
        "DaemonSet",
        "daemonset",
        "kube_daemonset_status_number_ready",
        "kube_daemonset_status_desired_number_scheduled",
    ),
)


def workload_ready_ratio() -> str:
    parts = [
        f"({_by_kind(ready, kind, label)} / {_by_kind(desired, kind, label)})"
        for kind, label, ready, desired in REPLICA_METRICS
    ]
    return " or ".join(parts)


def workload_up() -> str:
    """1 while a workload has a ready replica, else 0 (what its availability averages)."""
    parts = [
        f"({_by_kind(ready, kind, label)} > bool 0)" for kind, label, ready, _ in REPLICA_METRICS
    ]
    return " or ".join(parts)


NODE_READY = 'max by (node) (kube_node_status_condition{condition="Ready",status="true"})'


def default_checks(
    request_metric: str = "http_requests_total",
) -> dict[CIClass, list[CheckOverride]]:
    """The check templates per class; a checks file replaces a class's list."""

    def check(name: str, query: str, **thresholds: Threshold) -> CheckOverride:
        return CheckOverride(name=name, query=query, **thresholds)

    workload = [
        check(
            "replicas",
            workload_ready_ratio(),
            degraded=Threshold(below=1),
            down=Threshold(below=0.001),
        ),
        check(
            "restarts",
            per_workload("sum", "increase(kube_pod_container_status_restarts_total[1h])"),
            degraded=Threshold(above=3),
        ),
        check(
            "up",
            per_workload("avg", "up"),
            degraded=Threshold(below=1),
            down=Threshold(below=0.001),
        ),
    ]
    errors = f'{request_metric}{{code=~"5.."}}'
    total = f"sum by (namespace, service) (rate({request_metric}[5m]))"
    return {
        **dict.fromkeys(WORKLOAD_CLASSES, workload),
        CIClass.NODE: [
            check("ready", NODE_READY, down=Threshold(below=0.5)),
            check(
                "pressure",
                "max by (node) (kube_node_status_condition"
                '{condition=~"MemoryPressure|DiskPressure|PIDPressure",status="true"})',
                degraded=Threshold(above=0.5),
            ),
        ],
        CIClass.SERVICE: [
            check(
                "errors",
                f"((sum by (namespace, service) (rate({errors}[5m])) or 0 * {total}) / {total})",
                degraded=Threshold(above=0.01),
                down=Threshold(above=0.5),
            )
        ],
    }


def availability_signal(class_: CIClass) -> str | None:
    """The 0/1 series whose average over time is the item's availability."""
    if class_ in WORKLOAD_CLASSES:
        return workload_up()
    if class_ == CIClass.NODE:
        return NODE_READY
    if class_ == CIClass.SERVICE:
        return "max by (namespace, service) (up)"
    return None


def availability_query(signal: str) -> str:
    """One query for 1d, 7d and 30d, each series tagged with its window."""
    return " or ".join(
        f'label_replace(avg_over_time(({signal})[{w}:{STEP}]), "{WINDOW_LABEL}", "{w}", "", "")'
        for w in AVAILABILITY_WINDOWS
    )


def latency_query(metric: str, quantiles: Iterable[float]) -> str:
    """Latency quantiles per service from a histogram, each series tagged with its quantile."""
    buckets = f"sum by (namespace, service, le) (rate({metric}_bucket[5m]))"
    return " or ".join(
        f'label_replace(histogram_quantile({q:g}, {buckets}), "{QUANTILE_LABEL}", "{q:g}", "", "")'
        for q in sorted(set(quantiles))
    )


def check_key(name: str) -> str:
    return f"check/{name}"


def custom_query(items: Iterable[Item]) -> str | None:
    """Every item's own checks in one query, tagged with the item and the check."""
    parts = [
        f'label_replace(label_replace({embedded(c.query)}, "{ITEM_LABEL}",'
        f' "{_escape(item.key)}", "", ""), "{CHECK_LABEL}", "{c.name}", "", "")'
        for item in items
        for c in item.monitoring.checks
    ]
    return union(parts) if parts else None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


# -- matching answers to items ---------------------------------------------------------------

Sample = tuple[Mapping[str, str], float]


def value_of(series: Mapping[str, Any]) -> float:
    try:
        return float(series["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return math.nan


def assign(answer: Iterable[Mapping[str, Any]], items: Sequence[Item]) -> dict[str, list[Sample]]:
    """The series of one templated answer per item key: a series belongs to every item whose
    match labels it carries (items are indexed by their label names, so this is linear)."""
    groups: dict[tuple[str, ...], dict[tuple[str, ...], list[str]]] = {}
    for item in items:
        if not item.match:
            continue
        names = tuple(sorted(item.match))
        values = tuple(item.match[n] for n in names)
        groups.setdefault(names, {}).setdefault(values, []).append(item.key)
    out: dict[str, list[Sample]] = {}
    for series in answer:
        labels = series.get("metric") or {}
        value = value_of(series)
        for names, index in groups.items():
            values = tuple(str(labels.get(n, "")) for n in names)
            for key in index.get(values, ()):
                out.setdefault(key, []).append((labels, value))
    return out


def assign_custom(answer: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, list[Sample]]]:
    """The batched custom answer as {item key: {check: samples}}."""
    out: dict[str, dict[str, list[Sample]]] = {}
    for series in answer:
        labels = series.get("metric") or {}
        key, check = labels.get(ITEM_LABEL), labels.get(CHECK_LABEL)
        if key and check:
            out.setdefault(key, {}).setdefault(check, []).append((labels, value_of(series)))
    return out


# -- judging --------------------------------------------------------------------------------


def round_to(value: float, digits: int = 4) -> float:
    """`value` to `digits` significant digits (status changes when a figure does, not noise)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def judge(check: CheckOverride, values: Sequence[float]) -> CheckResult:
    """One check's verdict over the item's series: the worst value counts; none is NoData."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return CheckResult(name=check.name, state="NoData", message="no series")
    bound = check.down or check.degraded
    assert bound is not None
    worst = min(finite) if bound.below is not None else max(finite)
    shown = f"{round_to(worst):g}"
    for state, threshold in (("Down", check.down), ("Degraded", check.degraded)):
        if threshold is not None and threshold.breached(worst):
            side = (
                f"below {threshold.below:g}"
                if threshold.below is not None
                else f"above {threshold.above:g}"
            )
            return CheckResult(
                name=check.name, state=state, value=round_to(worst), message=f"{shown} is {side}"
            )
    return CheckResult(name=check.name, state="Healthy", value=round_to(worst), message=shown)


def overall(results: Sequence[CheckResult]) -> Health:
    """The worst state among checks with data; Unknown when none had data."""
    states = {r.state for r in results}
    for state, health in (
        ("Down", Health.DOWN),
        ("Degraded", Health.DEGRADED),
        ("Healthy", Health.HEALTHY),
    ):
        if state in states:
            return health
    return Health.UNKNOWN


def evidence(results: Sequence[CheckResult]) -> str:
    """The checks that decided, for the Healthy condition's message."""
    bad = [r for r in results if r.state in ("Down", "Degraded")]
    shown = bad or [r for r in results if r.state == "Healthy"]
    if not shown:
        return "no check returned data: " + ", ".join(r.name for r in results) or "no checks"
    return "; ".join(f"{r.name} {r.message}" + (f" ({r.state})" if bad else "") for r in shown)


@dataclass
class Evaluation:
    """What one evaluation found for one item."""

    health: Health
    checks: list[CheckResult] = field(default_factory=list)
    availability: dict[str, float] | None = None
    performance: dict[str, Any] | None = None


def evaluate_item(
    item: Item,
    templates: Sequence[CheckOverride],
    answers: Mapping[str, Mapping[str, list[Sample]]],
    custom: Mapping[str, list[Sample]],
    latency: LatencyObjective | None = None,
) -> Evaluation:
    """The item's checks judged from the answers of its class's queries ({query key: {item key:
    samples}}: check_key(name) per check template, "availability" and "latency")."""
    own = {c.name for c in item.monitoring.checks}
    results = [
        judge(t, [v for _, v in answers.get(check_key(t.name), {}).get(item.key, [])])
        for t in templates
        if t.name not in own
    ]
    results += [judge(c, [v for _, v in custom.get(c.name, [])]) for c in item.monitoring.checks]
    performance = None
    by_quantile = quantiles_of(answers.get("latency", {}).get(item.key, []))
    if by_quantile:
        performance = performance_of(by_quantile, latency)
        if performance.get("withinObjective") is False:
            assert latency is not None
            q = by_quantile[latency.quantile]
            results.append(
                CheckResult(
                    name="latency",
                    state="Degraded",
                    value=round_to(q),
                    message=f"{q:.3g}s is above the objective {performance['objective']}",
                )
            )
    return Evaluation(
        health=overall(results),
        checks=results,
        availability=availability_of(answers.get("availability", {}).get(item.key, [])),
        performance=performance,
    )


def availability_of(samples: Iterable[Sample]) -> dict[str, float] | None:
    """Percent per window, to 0.01 % (None: no history)."""
    found = {}
    for labels, value in samples:
        window = labels.get(WINDOW_LABEL)
        if window in AVAILABILITY_WINDOWS and math.isfinite(value):
            found[window] = round(100 * value, 2)
    return found or None


def quantiles_of(samples: Iterable[Sample]) -> dict[float, float]:
    found = {}
    for labels, value in samples:
        q = labels.get(QUANTILE_LABEL)
        if q and math.isfinite(value):
            found[float(q)] = value
    return found


def label(quantile: float) -> str:
    return f"p{100 * quantile:g}"


def performance_of(
    by_quantile: Mapping[float, float], objective: LatencyObjective | None
) -> dict[str, Any]:
    """Status performance: seconds per quantile and, with an objective, whether it is met."""
    latency = {label(q): round_to(v) for q, v in sorted(by_quantile.items())}
    measured = by_quantile.get(objective.quantile) if objective else None
    return _judged(latency, measured, objective)


def service_performance(
    items: Iterable[tuple[str | None, Mapping[str, Any] | None]],
    objectives: Mapping[str, LatencyObjective],
) -> dict[str, dict[str, Any]]:
    """Performance per service: per quantile the slowest of its items' (a request through the
    service is no faster than its slowest part), judged against the service's objective.
    Input: (service, item performance) pairs."""
    slowest: dict[str, dict[str, float]] = {}
    for service, performance in items:
        if not service or not performance:
            continue
        current = slowest.setdefault(service, {})
        for quantile, seconds in (performance.get("latency") or {}).items():
            current[quantile] = max(seconds, current.get(quantile, seconds))
    out = {}
    for service, latency in slowest.items():
        objective = objectives.get(service)
        measured = latency.get(label(objective.quantile)) if objective else None
        out[service] = _judged(dict(sorted(latency.items())), measured, objective)
    return out


def _judged(
    latency: dict[str, float], measured: float | None, objective: LatencyObjective | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"latency": latency}
    if objective is not None:
        out["objective"] = f"{label(objective.quantile)}<{objective.threshold}"
        if measured is not None:
            out["withinObjective"] = measured <= go_duration(objective.threshold).total_seconds()
    return out


def service_availability(
    items: Iterable[tuple[str | None, Mapping[str, float] | None]],
) -> dict[str, dict[str, float]]:
    """Availability per service: per window, the lowest of its items' (the service is no more
    available than its least available part). Input: (service, item availability) pairs."""
    out: dict[str, dict[str, float]] = {}
    for service, availability in items:
        if not service or not availability:
            continue
        current = out.setdefault(service, {})
        for window, value in availability.items():
            current[window] = min(value, current.get(window, value))
    return out
