"""ServiceLevel handlers: the spec is validated; objectives are evaluated against Prometheus."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import kopf

from opsledger.adapters.prometheus import Prometheus
from opsledger.domain.slo import Evaluation, batched_query, evaluate, split_result
from opsledger.handlers.common import register_spec_reconciler
from opsledger.models import SERVICE_LEVEL
from opsledger.models.servicelevel import ServiceLevelSpec


@dataclass(frozen=True)
class ServiceLevelRef:
    """A ServiceLevel to evaluate: where it lives and what it promises."""

    namespace: str
    name: str
    spec: ServiceLevelSpec

    def key(self, objective: str) -> str:
        return f"{self.namespace}/{self.name}/{objective}"


def evaluate_service_levels(
    prometheus: Prometheus, service_levels: Iterable[ServiceLevelRef], at: datetime | None = None
) -> dict[tuple[str, str], list[Evaluation]]:
    """Every objective of every ServiceLevel, from one batched query.

    Returns {(namespace, name): [evaluation per objective, in spec order]}.
    """
    refs = list(service_levels)
    objectives = {
        ref.key(o.name): (o.sli.events.error_query, o.sli.events.total_query, o.window)
        for ref in refs
        for o in ref.spec.objectives
    }
    ratios = split_result(prometheus.instant(batched_query(objectives), at)) if objectives else {}
    return {
        (ref.namespace, ref.name): [
            evaluate(o.name, o.objective, o.window, ratios.get(ref.key(o.name), {}))
            for o in ref.spec.objectives
        ]
        for ref in refs
    }


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach the ServiceLevel handlers to `registry`."""
    register_spec_reconciler(SERVICE_LEVEL, registry)
