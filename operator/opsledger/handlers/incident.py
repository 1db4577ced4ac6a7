"""Incident handlers: the spec is validated through its model and Ready reports the outcome."""

from __future__ import annotations

import kopf

from opsledger.handlers.common import register_spec_reconciler
from opsledger.models import INCIDENT


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach the Incident handlers to `registry`."""
    register_spec_reconciler(INCIDENT, registry)
