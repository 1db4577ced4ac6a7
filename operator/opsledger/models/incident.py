"""Incident: an unplanned interruption or degradation of a service."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, Field, model_validator

from opsledger.models.common import CamelModel, K8sName, Requester, StatusBase
from opsledger.models.servicelevel import Priority


class Level(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class IncidentState(StrEnum):
    NEW = "New"
    ACKNOWLEDGED = "Acknowledged"
    IN_PROGRESS = "InProgress"
    RESOLVED = "Resolved"
    CLOSED = "Closed"


class OriginType(StrEnum):
    MANUAL = "manual"
    ALERTMANAGER = "alertmanager"
    SLO_BURN = "sloBurn"
    CHANGE = "change"
    CAPACITY = "capacity"


class Origin(CamelModel):
    """Who or what opened the incident."""

    type: OriginType = Field(
        default=OriginType.MANUAL,
        description="manual, alertmanager, sloBurn, change or capacity.",
    )
    reference: str | None = Field(
        default=None,
        description="The alert fingerprint, ServiceLevel objective or Change that opened it.",
        max_length=512,
    )


RESOLVED_STATES = ("Resolved", "Closed")


class IncidentSpec(CamelModel):
    """What is wrong, how bad it is, and the state people drive it through."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(self.state in ['Resolved', 'Closed']) || has(self.resolution)",
                    "message": (
                        "a Resolved or Closed incident needs spec.resolution saying how it "
                        "was resolved"
                    ),
                    "fieldPath": ".resolution",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "oldSelf.state != 'Closed' || self.state == 'Closed'",
                    "message": "a Closed incident cannot be reopened: open a new Incident",
                    "fieldPath": ".state",
                },
                {
                    "rule": (
                        "has(self.requester) == has(oldSelf.requester) && "
                        "(!has(self.requester) || self.requester == oldSelf.requester)"
                    ),
                    "message": (
                        "spec.requester is who the API server says reported the Incident: it "
                        "cannot be set or changed afterwards"
                    ),
                    "fieldPath": ".requester",
                },
            ]
        }
    )

    title: str = Field(description="One line saying what is wrong.", min_length=1, max_length=200)
    description: str | None = Field(default=None, description="Details.", max_length=16384)
    service: str | None = Field(
        default=None,
        description="The affected service (a ServiceLevel's spec.service).",
        max_length=253,
    )
    configuration_items: list[K8sName] = Field(
        default_factory=list,
        description="Names of affected ConfigurationItems in this namespace.",
        max_length=128,
    )
    impact: Level = Field(
        default=Level.MEDIUM, description="How widely the service is affected: high, medium, low."
    )
    urgency: Level = Field(
        default=Level.MEDIUM, description="How quickly it must be resolved: high, medium, low."
    )
    state: IncidentState = Field(
        default=IncidentState.NEW,
        description="New, Acknowledged, InProgress, Resolved or Closed. Set it to move on.",
    )
    assignee: str | None = Field(default=None, description="Who works on it.", max_length=253)
    resolution: str | None = Field(
        default=None, description="How it was resolved; required to resolve.", max_length=16384
    )
    root_cause: str | None = Field(
        default=None, description="The underlying cause, once known.", max_length=16384
    )
    origin: Origin | None = Field(default=None, description="Who or what opened it.")
    requester: Requester | None = Field(
        default=None,
        description=(
            "Who reported it: filled in by OpsLedger's admission webhook from the authenticated "
            "user (anything set by hand is replaced; the service desk reports as the person "
            "signed in), immutable afterwards."
        ),
    )

    @model_validator(mode="after")
    def _resolution_required(self) -> IncidentSpec:
        if self.state in RESOLVED_STATES and not self.resolution:
            raise ValueError(f"a {self.state} incident needs spec.resolution")
        return self


class TimelineEntry(CamelModel):
    """Something that happened to the incident."""

    at: datetime = Field(description="When.")
    event: str = Field(description="What, e.g. Opened, Acknowledged, Assigned, Resolved.")
    detail: str | None = Field(default=None, description="More about it.", max_length=4096)


class SLAStatus(CamelModel):
    """Due times from the service's incident targets."""

    respond_by: datetime | None = Field(default=None, description="Acknowledge by this time.")
    resolve_by: datetime | None = Field(default=None, description="Resolve by this time.")
    response_breached: bool = Field(default=False, description="Acknowledged late, or not yet.")
    resolution_breached: bool = Field(default=False, description="Resolved late, or not yet.")


class IncidentStatus(StatusBase):
    """The incident's priority, SLA and history."""

    priority: Priority | None = Field(default=None, description="P1–P5 from impact × urgency.")
    state: IncidentState | None = Field(default=None, description="The state last handled.")
    assignee: str | None = Field(default=None, description="The assignee last handled.")
    opened_at: datetime | None = Field(default=None, description="When it was opened.")
    acknowledged_at: datetime | None = Field(default=None, description="When acknowledged.")
    resolved_at: datetime | None = Field(default=None, description="When resolved.")
    time_to_acknowledge: str | None = Field(default=None, description="Opened → acknowledged.")
    time_to_resolve: str | None = Field(default=None, description="Opened → resolved.")
    sla: SLAStatus | None = Field(default=None, description="Due times and breaches.")
    next_deadline: datetime | None = Field(
        default=None, description="When the next SLA target falls due, if one is pending."
    )
    timeline: list[TimelineEntry] = Field(default_factory=list, description="What happened.")
    problem: str | None = Field(
        default=None, description="The problem this incident recurs under, if it is one of several."
    )
    suspected_cause: str | None = Field(
        default=None,
        description="A Change that completed on the incident's items (or what they depend on) "
        "shortly before it opened.",
    )
