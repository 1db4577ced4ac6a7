"""The one Incident factory: every Incident the operator opens (for an alert, an SLO burn, a
rolled-back change, a capacity risk) is created here, the same way.

De-duplication is by name: each origin names its Incident so that the same cause always gives
the same name (an alert's fingerprint, a change's name, an item and resource), and a name that
exists already is not opened twice. The origin says who or what opened it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsledger.adapters.kube import Kube
from opsledger.models import API_GROUP, API_VERSION, INCIDENT
from opsledger.models.incident import OriginType


def open_incident(
    kube: Kube,
    namespace: str,
    name: str,
    *,
    origin: OriginType,
    reference: str,
    spec: Mapping[str, Any],
    labels: Mapping[str, str] | None = None,
) -> bool:
    """Create Incident `namespace/name` (blocking: call it in a thread); False when it exists
    already, so the cause was reported before."""
    created = kube.create_custom(
        INCIDENT.plural,
        namespace,
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": INCIDENT.kind,
            "metadata": {"name": name[:253], "labels": dict(labels or {})},
            "spec": {**spec, "origin": {"type": origin.value, "reference": reference}},
        },
    )
    return created is not None
