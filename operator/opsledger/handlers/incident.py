"""Incident handlers: the spec is validated, the priority follows from impact × urgency."""

from __future__ import annotations

from typing import Any

import kopf

from opsledger.domain.priority import priority
from opsledger.handlers.common import register_spec_reconciler
from opsledger.models import INCIDENT
from opsledger.models.incident import IncidentSpec


def _derive(spec: IncidentSpec) -> dict[str, Any]:
    return {"priority": priority(spec.impact, spec.urgency).value}


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach the Incident handlers to `registry`."""
    register_spec_reconciler(INCIDENT, registry, _derive)
