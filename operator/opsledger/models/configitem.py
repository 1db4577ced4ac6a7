"""ConfigurationItem: an asset recorded in the Git-backed CMDB."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from opsledger.models.common import (
    CamelModel,
    LatencyObjective,
    ObjectReference,
    Performance,
    PromQL,
    StatusBase,
)


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


class Threshold(CamelModel):
    """A bound on a check's value: breached when the value is below or above it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.below) != has(self.above)",
                    "message": "set exactly one of below or above",
                }
            ]
        }
    )

    below: float | None = Field(default=None, description="Breached while the value is below.")
    above: float | None = Field(default=None, description="Breached while the value is above.")

    @model_validator(mode="after")
    def _one_bound(self) -> Threshold:
        if (self.below is None) == (self.above is None):
            raise ValueError("a threshold takes exactly one of below or above")
        return self

    def breached(self, value: float) -> bool:
        return value < self.below if self.below is not None else value > (self.above or 0.0)


class CheckOverride(CamelModel):
    """A health check of this item only: PromQL for the item, judged by two thresholds."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.degraded) || has(self.down)",
                    "message": "a check needs a degraded or a down threshold",
                }
            ]
        }
    )

    name: str = Field(
        description=(
            "The check's name. The name of a default check of the item's class (e.g. replicas, "
            "restarts, up, ready, pressure, errors) replaces that check for this item."
        ),
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
    )
    query: PromQL = Field(
        description=(
            "PromQL for this item; every series it returns is judged (the worst counts), no "
            "series means no data (the check is skipped)."
        ),
        min_length=1,
        max_length=4096,
    )
    degraded: Threshold | None = Field(
        default=None, description="The item is Degraded while the value breaches this."
    )
    down: Threshold | None = Field(
        default=None, description="The item is Down while the value breaches this."
    )

    @model_validator(mode="after")
    def _a_threshold(self) -> CheckOverride:
        if self.degraded is None and self.down is None:
            raise ValueError(f"check {self.name!r}: set degraded, down or both")
        return self


class Monitoring(CamelModel):
    """How the item's health, availability, performance and capacity are read from Prometheus."""

    enabled: bool = Field(
        default=True, description="false: the item is not evaluated (no health, no capacity)."
    )
    match: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Labels that identify the item's series in the default queries, replacing those "
            "derived from the source: {namespace, workload: Kind/name} for workloads, {node} "
            "for nodes, {namespace, service} for services, {namespace, persistentvolumeclaim} "
            "for storage."
        ),
        max_length=8,
        json_schema_extra={
            "additionalProperties": {"type": "string", "description": "A label's value."}
        },
    )
    checks: list[CheckOverride] = Field(
        default_factory=list,
        description="Health checks of this item, added to the class's defaults (or replacing "
        "the default of the same name).",
        max_length=16,
    )
    latency: LatencyObjective | None = Field(
        default=None,
        description="Latency objective of this item; default: its service's ServiceLevel's "
        "spec.latency.",
    )


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
    monitoring: Monitoring | None = Field(
        default=None,
        description="Overrides of how health, availability and capacity are measured.",
    )


class CMDBRecordStatus(CamelModel):
    """Where the item's record lives in the CMDB repository."""

    path: str | None = Field(default=None, description="Path of the record in the repository.")
    commit: str | None = Field(default=None, description="The commit that last wrote the record.")
    synced_at: datetime | None = Field(
        default=None, description="When the record was last pushed to the remote."
    )
    availability: dict[str, float] | None = Field(
        default=None, description="The availability figures the record holds."
    )


class CheckResult(CamelModel):
    """The evidence of one health check."""

    name: str = Field(description="The check, e.g. replicas.")
    state: Literal["Healthy", "Degraded", "Down", "NoData"] = Field(
        description="What the value means for the item; NoData: no series (not judged)."
    )
    value: float | None = Field(default=None, description="The worst value measured.")
    message: str = Field(default="", description="The value against its thresholds.")


class Availability(CamelModel):
    """Share of time the item was up (percent), over the last day, week and 30 days."""

    d1: float | None = Field(default=None, alias="1d", description="Percent over 1 day.")
    d7: float | None = Field(default=None, alias="7d", description="Percent over 7 days.")
    d30: float | None = Field(default=None, alias="30d", description="Percent over 30 days.")


class ResourceCapacity(CamelModel):
    """Usage of one resource against what the item may use, and when it runs out."""

    resource: Literal["cpu", "memory", "storage"] = Field(description="cpu, memory or storage.")
    usage: float | None = Field(
        default=None, description="Current usage: cores for cpu, bytes for memory and storage."
    )
    requests: float | None = Field(default=None, description="Sum of requests (workloads, nodes).")
    limits: float | None = Field(default=None, description="Sum of limits (workloads).")
    capacity: float | None = Field(
        default=None,
        description="What runs out: limits (workloads), allocatable (nodes), size (volumes).",
    )
    utilization: float | None = Field(default=None, description="Usage / capacity, percent.")
    trend_per_day: float | None = Field(
        default=None, description="Growth of usage per day, fitted over the look-back."
    )
    exhausted_at: datetime | None = Field(
        default=None, description="When the fitted trend reaches the capacity (if it grows)."
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
    health_checks: list[CheckResult] = Field(
        default_factory=list, description="The evidence: each check's value and verdict."
    )
    evaluated_at: datetime | None = Field(
        default=None,
        description="When health, availability or capacity last changed (they are measured "
        "every OPSLEDGER_HEALTH_INTERVAL; a status that did not change is not written again).",
    )
    availability: Availability | None = Field(
        default=None, description="Percent of time up over 1d, 7d and 30d."
    )
    performance: Performance | None = Field(
        default=None, description="Latency quantiles and the latency objective."
    )
    capacity: list[ResourceCapacity] = Field(
        default_factory=list, description="Usage, capacity and forecast per resource."
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
