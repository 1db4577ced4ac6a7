"""ServiceLevel handlers: the spec is validated through its model and Ready reports the outcome."""

from __future__ import annotations

import kopf

from opsledger.handlers.common import register_spec_reconciler
from opsledger.models import SERVICE_LEVEL


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach the ServiceLevel handlers to `registry`."""
    register_spec_reconciler(SERVICE_LEVEL, registry)
