"""The batched PromQL of the health pass: which items to evaluate, the check templates, one
query per template of each class present (plus one for all items' own checks), each answer
assigned to its items, and the latency objectives the items are measured against.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from opsledger.adapters.prometheus import Prometheus, PrometheusUnavailableError
from opsledger.domain import capacity, health
from opsledger.domain.classes import effective_class
from opsledger.domain.durations import go_duration
from opsledger.domain.health import Evaluation, Item, Sample
from opsledger.models.common import LatencyObjective
from opsledger.models.configitem import (
    CheckOverride,
    CIClass,
    ConfigurationItemSpec,
    Lifecycle,
    Monitoring,
)
from opsledger.models.settings import Settings

log = logging.getLogger(__name__)

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
