"""Canonical CMDB records: the same object always renders to the same bytes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from opsledger.domain.classes import effective_class
from opsledger.domain.drift import drifted
from opsledger.domain.redaction import Redactor
from opsledger.models.common import CamelModel
from opsledger.models.configitem import (
    Availability,
    ConfigurationItemSpec,
    Lifecycle,
    Relationship,
)
from opsledger.models.records import ConfigurationItemRecord, RecordMetadata


def record_path(cluster: str, namespace: str, folder: str, name: str) -> str:
    """clusters/<cluster>/<namespace>/<folder>/<name>.yaml: each cluster writes only its own."""
    return f"clusters/{cluster}/{namespace}/{folder}/{name}.yaml"


def ci_record(
    *,
    cluster: str,
    namespace: str,
    name: str,
    spec: ConfigurationItemSpec,
    observed: dict[str, Any] | None,
    discovered: Iterable[Relationship] = (),
    retired_reason: str | None = None,
    redactor: Redactor | None = None,
    availability: Mapping[str, Any] | None = None,
) -> ConfigurationItemRecord:
    """The record of a configuration item: declared fields, observation, relationships.

    `observed` is redacted already (by `observe`); the declared attributes are redacted here, by
    the same `redactor`, and drift compares the two as written. `availability` is the item's
    status.availability (already rounded to 0.01 %, so the record changes when a figure does).
    """
    observed = observed or {}
    attributes = (redactor or Redactor()).mapping(spec.attributes)
    source_kind = spec.source.kind if spec.source else None
    resolved = spec.model_copy(
        update={
            "class_": effective_class(spec.class_, source_kind),
            "lifecycle": Lifecycle.RETIRED.value if retired_reason else spec.lifecycle,
            "attributes": attributes,
        }
    )
    edges = {(r.type, r.target): r for r in [*spec.relationships, *discovered]}
    return ConfigurationItemRecord(
        metadata=RecordMetadata(cluster=cluster, namespace=namespace, name=name),
        spec=resolved,
        relationships=[edges[k] for k in sorted(edges)],
        observed=observed,
        drift=drifted(attributes, observed),
        retired_reason=retired_reason,
        availability=Availability.model_validate(availability) if availability else None,
    )


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def to_yaml(record: CamelModel) -> str:
    """The record as committed: fields in model order, maps inside sorted, no timestamps."""
    wire = record.to_wire()
    body = {
        k: (_sorted(v) if isinstance(v, dict) and k != "metadata" else v) for k, v in wire.items()
    }
    return yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)
