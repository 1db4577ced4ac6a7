"""ConfigurationItem: an asset recorded in the Git-backed CMDB."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field

from opsledger.models.common import CamelModel, ObjectReference, StatusBase


class CIClass(StrEnum):
    APPLICATION = "Application"
    WORKLOAD = "Workload"
    SERVICE = "Service"
    DATABASE = "Database"
    NODE = "Node"
    NAMESPACE = "Namespace"
    STORAGE = "Storage"
    INGRESS = "Ingress"
    NETWORK = "Network"
    OTHER = "Other"


class Lifecycle(StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    MAINTENANCE = "maintenance"
    RETIRED = "retired"


class Criticality(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class RelationshipType(StrEnum):
    DEPENDS_ON = "dependsOn"
    RUNS_ON = "runsOn"
    PART_OF = "partOf"
    EXPOSES = "exposes"
    CONNECTS_TO = "connectsTo"
    STORES_IN = "storesIn"


class Health(StrEnum):
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    DOWN = "Down"
    UNKNOWN = "Unknown"


class Relationship(CamelModel):
    """A directed edge from this item to another ConfigurationItem."""

    type: RelationshipType = Field(
        description=(
            "How this item relates to the target: dependsOn, runsOn, partOf, exposes, "
            "connectsTo or storesIn."
        )
    )
    target: str = Field(
        description=(
            "Name of the target ConfigurationItem in this namespace, or namespace/name for "
            "one in another namespace."
        ),
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        max_length=317,
    )


class ConfigurationItemSpec(CamelModel):
    """What the item is, who owns it and how it relates to other items."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": (
                        "!has(oldSelf.source) || "
                        "(has(self.source) && self.source == oldSelf.source)"
                    ),
                    "message": (
                        "spec.source is immutable: a ConfigurationItem describes one object "
                        "for its whole life; create a new ConfigurationItem for another object"
                    ),
                    "fieldPath": ".source",
                }
            ]
        }
    )

    class_: CIClass | None = Field(
        default=None,
        alias="class",
        description=(
            "The CI class. Defaults from the source's kind (Deployment → Workload, "
            "Service → Service, Node → Node, …) when omitted."
        ),
    )
    service: str | None = Field(
        default=None,
        description="The business or technical service this item belongs to.",
        max_length=253,
    )
    owner: str | None = Field(
        default=None,
        description="The team or person accountable for the item, e.g. team-payments.",
        max_length=253,
    )
    lifecycle: Lifecycle = Field(
        default=Lifecycle.ACTIVE,
        description="Where the item is in its life: planned, active, maintenance or retired.",
    )
    criticality: Criticality = Field(
        default=Criticality.MEDIUM,
        description="Business criticality: low, medium, high or critical. Raises change risk.",
    )
    protected: bool = Field(
        default=False,
        description=(
            "When true, updates to the source object are denied unless an approved Change "
            "targeting this item is in progress."
        ),
    )
    relationships: list[Relationship] = Field(
        default_factory=list,
        description="Declared relationships to other items (discovered ones are added in status).",
        max_length=256,
    )
    attributes: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Declared attributes. Where the source has an observed value for the same key, "
            "a difference is reported as drift."
        ),
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    source: ObjectReference | None = Field(
        default=None,
        description=(
            "The live Kubernetes object this item describes. Namespaced objects are looked up "
            "in the item's namespace. Immutable once set."
        ),
    )


class CMDBRecordStatus(CamelModel):
    """Where the item's record lives in the CMDB repository."""

    path: str | None = Field(default=None, description="Path of the record in the repository.")
    commit: str | None = Field(default=None, description="The commit that last wrote the record.")
    synced_at: datetime | None = Field(
        default=None, description="When the record was last pushed to the remote."
    )


class ConfigurationItemStatus(StatusBase):
    """What the operator observed and recorded for the item."""

    class_: CIClass | None = Field(
        default=None,
        alias="class",
        description="The effective class: spec.class, or the one defaulted from the source.",
    )
    observed: dict[str, Any] | None = Field(
        default=None,
        description="Attributes observed on the source object.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    drift: list[str] = Field(
        default_factory=list,
        description="Names of declared attributes whose observed value differs.",
    )
    relationships: list[Relationship] = Field(
        default_factory=list,
        description=(
            "Relationships discovered on the source: partOf its owner's item, exposes the "
            "workload items a Service selects."
        ),
    )
    health: Health | None = Field(
        default=None, description="Healthy, Degraded, Down or Unknown, from Prometheus."
    )
    dependents: int | None = Field(
        default=None, ge=0, description="How many items depend on this one, transitively."
    )
    cmdb: CMDBRecordStatus | None = Field(default=None, description="The CMDB record.")
    problem: str | None = Field(
        default=None,
        description="The problem recurring incidents on this item flagged (its CMDB record is "
        "problems/<name>.yaml beside the item's).",
    )
