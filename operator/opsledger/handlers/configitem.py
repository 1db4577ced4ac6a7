"""ConfigurationItem handlers: the spec is validated, the class defaulted from the source."""

from __future__ import annotations

from typing import Any

import kopf

from opsledger.domain.classes import effective_class
from opsledger.handlers.common import register_spec_reconciler
from opsledger.models import CONFIGURATION_ITEM
from opsledger.models.configitem import ConfigurationItemSpec


def _derive(spec: ConfigurationItemSpec) -> dict[str, Any]:
    source_kind = spec.source.kind if spec.source else None
    return {"class": effective_class(spec.class_, source_kind).value}


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach the ConfigurationItem handlers to `registry`."""
    register_spec_reconciler(CONFIGURATION_ITEM, registry, _derive)
