"""Incident handlers: the two indexes correlation reads, the spec reconciler and the SLA
clock (a timer that looks again at each next deadline); the work is in services/incident.py."""

from __future__ import annotations

from typing import Any

import kopf

from opsledger.domain.correlation import IncidentFact
from opsledger.domain.times import parse_time
from opsledger.handlers import status
from opsledger.handlers.common import (
    context,
    every_idle,
    forget_on_delete,
    on_spec,
    retry_on,
    validated_spec,
)
from opsledger.models import INCIDENT
from opsledger.models.incident import IncidentSpec
from opsledger.models.settings import Settings
from opsledger.services import incident as incidents
from opsledger.services.indexes import FACTS, TARGETS


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Attach the Incident handlers to `registry`."""

    @kopf.index("opsledger.io", "v1alpha1", "servicelevels", registry=registry, id=TARGETS)
    def incident_targets(
        *, namespace: str | None, spec: kopf.Spec, **_: Any
    ) -> dict[tuple[str, str], tuple[dict[str, str], ...]]:
        """Empty (not None, which Kopf takes as "keep what was indexed") when there is no
        service, so a ServiceLevel whose service is removed or renamed leaves no stale entry."""
        targets = spec.get("incidentTargets") or []
        if not spec.get("service"):
            return {}
        return {(namespace or "", spec["service"]): tuple(dict(t) for t in targets)}

    @kopf.index("opsledger.io", "v1alpha1", INCIDENT.plural, registry=registry, id=FACTS)
    def incident_facts(
        *,
        namespace: str | None,
        name: str,
        spec: kopf.Spec,
        status: kopf.Status,
        meta: kopf.Meta,
        **_: Any,
    ) -> dict[str, IncidentFact]:
        opened = parse_time(status.get("openedAt")) or parse_time(meta.get("creationTimestamp"))
        if opened is None:
            return {}
        return {
            namespace or "": IncidentFact(
                name=name,
                opened_at=opened,
                items=tuple(spec.get("configurationItems") or ()),
                service=spec.get("service"),
                state=str(spec.get("state") or "New"),
                root_cause=spec.get("rootCause"),
                resolution=spec.get("resolution"),
                resolved_at=parse_time(status.get("resolvedAt")),
                problem=status.get("problem"),
            )
        }

    @on_spec(INCIDENT, registry)
    async def reconcile(
        *, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        ctx = context(memo)
        spec = validated_spec(info=INCIDENT, ctx=ctx, body=body, patch=patch)
        if not isinstance(spec, IncidentSpec):
            return
        outcome, failed = await incidents.reconcile(ctx, body, spec, kwargs)
        status.apply(ctx, INCIDENT, body, patch, outcome)
        retry_on(failed)

    @every_idle(INCIDENT, registry, id="sla-clock", interval=settings.incident_interval)
    async def clock(*, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
        """Flag breaches as deadlines pass (nothing else changes the incident then)."""
        ctx = context(memo)
        outcome, failed = await incidents.tick(ctx, body, kwargs)
        if outcome is not None:
            status.apply(ctx, INCIDENT, body, patch, outcome)
        retry_on(failed)

    forget_on_delete(INCIDENT, registry)
