"""ConfigurationItem handlers: the spec is validated through its model; Ready tells the outcome."""

from __future__ import annotations

import kopf

from opsledger.handlers.common import register_spec_reconciler
from opsledger.models import CONFIGURATION_ITEM


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach the ConfigurationItem handlers to `registry`."""
    register_spec_reconciler(CONFIGURATION_ITEM, registry)
