"""ServiceRequest: a request for an item of the service catalog (ITIL request fulfilment), and
the catalog item it names: `catalog/<item>.yaml` in the CMDB repository, changed only by pull
request.

    title: More replicas for a shop web workload
    description: Scale web up or down, within what the web tier is sized for.
    service: shop                     # SLA targets come from this service's ServiceLevel
    approval: none                    # none: fulfilled at once; required: approved by merge
    parameters:
    - {name: replicas, type: integer, min: 1, max: 10, description: How many pods}
    - {name: reason, type: string, maxLength: 200, required: false}
    fulfilment:                       # no fulfilment: a person fulfils it
      template: scale-web             # the standard-change template that bounds it
      change:                         # the Change made, parameters as {{ name }}
        summary: "Scale web to {{ replicas }}"
        targets: [web]
        plan:
        - target: {apiVersion: apps/v1, kind: Deployment, name: web}
          patch: {spec: {replicas: "{{ replicas }}"}}
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from opsledger.models.common import CamelModel, GoDuration, K8sName, Requester, StatusBase

PARAMETER_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
CATALOG_DIR = "catalog"


class _Strict(CamelModel):
    model_config = ConfigDict(extra="forbid")


class ParameterType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"


class CatalogParameter(_Strict):
    """One value the requester gives, with its type and bounds (the desk makes a form of them)."""

    name: str = Field(
        description="Its name, as {{ name }} in the change.", pattern=PARAMETER_NAME_PATTERN
    )
    title: str | None = Field(default=None, description="The form's label.", max_length=100)
    description: str | None = Field(default=None, description="Help text.", max_length=1000)
    type: ParameterType = Field(default=ParameterType.STRING, description="Its type.")
    required: bool = Field(default=True, description="Whether it must be given (or defaulted).")
    default: str | int | float | bool | None = Field(default=None, description="Its default.")
    min: float | None = Field(default=None, description="Smallest number allowed.")
    max: float | None = Field(default=None, description="Largest number allowed.")
    min_length: int | None = Field(default=None, ge=0, description="Shortest string allowed.")
    max_length: int = Field(default=256, ge=1, le=4096, description="Longest string allowed.")
    pattern: str | None = Field(
        default=None, description="A regular expression a string must match, whole."
    )
    values: list[str | int | float | bool] | None = Field(
        default=None, description="The only values allowed (the form offers a choice)."
    )


class Fulfilment(_Strict):
    """How the item is fulfilled: by a standard change, within its template's bounds."""

    template: str = Field(
        description="The standard-change template (standard-changes/<template>.yaml).",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    )
    change: dict[str, Any] = Field(
        description="The Change's spec (summary, targets, plan, checks, schedule; service from "
        "the item); a string that is exactly {{ name }} becomes the parameter's typed value, "
        "other strings have parameters filled in."
    )


class CatalogItem(_Strict):
    title: str = Field(description="What is requested, in a line.", max_length=200)
    description: str | None = Field(default=None, description="Longer text.", max_length=4000)
    service: str | None = Field(
        default=None, description="The service it is for: SLA targets from its ServiceLevel."
    )
    approval: Literal["none", "required"] = Field(
        default="none",
        description="none: a fitting request is fulfilled at once by its standard change; "
        "required: its change is a normal one, approved by merging its pull request.",
    )
    parameters: list[CatalogParameter] = Field(
        default_factory=list, description="What the requester gives.", max_length=32
    )
    fulfilment: Fulfilment | None = Field(
        default=None, description="The change that fulfils it; none: a person fulfils it."
    )

    @model_validator(mode="after")
    def _unique(self) -> CatalogItem:
        names = [p.name for p in self.parameters]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"parameters named twice: {', '.join(twice)}")
        return self


class OfferedParameter(CatalogParameter):
    """A catalog parameter as status shows it (its default and values of any scalar type)."""

    model_config = ConfigDict(extra="ignore")

    default: Any = Field(
        default=None,
        description="Its default.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    values: list[Any] | None = Field(
        default=None,
        description="The only values allowed.",
        json_schema_extra={"items": {"x-kubernetes-preserve-unknown-fields": True}},
    )


class CatalogEntry(CamelModel):
    """A catalog item as the service desk and `kubectl itsm request` offer it."""

    name: str = Field(description="The item's name (catalog/<name>.yaml).")
    title: str = Field(description="What is requested, in a line.")
    description: str | None = Field(default=None, description="Longer text.")
    approval: str = Field(default="none", description="none or required.")
    fulfilled_by: str = Field(default="person", description="change (a standard Change) or person.")
    parameters: list[OfferedParameter] = Field(
        default_factory=list, description="What the requester gives."
    )


class RequestState(StrEnum):
    OPEN = "Open"
    FULFILLED = "Fulfilled"
    CANCELLED = "Cancelled"


class RequestPhase(StrEnum):
    SUBMITTED = "Submitted"
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    SCHEDULED = "Scheduled"
    IN_FULFILMENT = "InFulfilment"
    WAITING_FOR_FULFILMENT = "WaitingForFulfilment"
    FULFILLED = "Fulfilled"
    FAILED = "Failed"
    REJECTED = "Rejected"
    CANCELLED = "Cancelled"


FINAL_PHASES = frozenset(
    {RequestPhase.FULFILLED, RequestPhase.FAILED, RequestPhase.REJECTED, RequestPhase.CANCELLED}
)


class ServiceRequestSpec(CamelModel):
    """Which catalog item, with which parameters; the state a person fulfilling it sets."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.item == oldSelf.item && "
                    "(has(self.parameters) == has(oldSelf.parameters)) && "
                    "(!has(self.parameters) || self.parameters == oldSelf.parameters)",
                    "message": "spec.item and spec.parameters are what was requested: they "
                    "cannot change; cancel this request and make a new one",
                    "fieldPath": ".item",
                },
                {
                    "rule": "self.state != 'Fulfilled' || has(self.resolution)",
                    "message": "a Fulfilled request needs spec.resolution saying what was done",
                    "fieldPath": ".resolution",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "oldSelf.state == 'Open' || self.state == oldSelf.state",
                    "message": "a Fulfilled or Cancelled request is closed: make a new one",
                    "fieldPath": ".state",
                },
                {
                    "rule": (
                        "has(self.requester) == has(oldSelf.requester) && "
                        "(!has(self.requester) || self.requester == oldSelf.requester)"
                    ),
                    "message": (
                        "spec.requester is who the API server says made the request: it "
                        "cannot be set or changed afterwards"
                    ),
                    "fieldPath": ".requester",
                },
            ]
        }
    )

    item: K8sName = Field(description="The catalog item (catalog/<item>.yaml in the CMDB).")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="The item's parameters by name: strings, numbers or booleans.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True, "maxProperties": 32},
    )
    justification: str | None = Field(
        default=None, description="Why it is needed.", max_length=4096
    )
    state: RequestState = Field(
        default=RequestState.OPEN,
        description="Open; Fulfilled (set by whoever fulfils an item without a change, with "
        "spec.resolution); Cancelled (by the requester: its change is cancelled if not started).",
    )
    resolution: str | None = Field(
        default=None, description="What was done to fulfil it.", max_length=4096
    )
    requester: Requester | None = Field(
        default=None,
        description=(
            "Who made the request: filled in by OpsLedger's admission webhook from the "
            "authenticated user (the service desk requests as the person signed in), "
            "immutable afterwards."
        ),
    )


class RequestEntry(CamelModel):
    """Something that happened to the request."""

    at: datetime = Field(description="When.")
    event: str = Field(description="What: Submitted, ChangeCreated, Fulfilled...")
    detail: str | None = Field(default=None, description="More about it.", max_length=4096)


class RequestSLA(CamelModel):
    fulfil_by: datetime | None = Field(default=None, description="Fulfil by this time.")
    breached: bool = Field(default=False, description="Fulfilled late, or not yet and late.")


class ServiceRequestStatus(StatusBase):
    """Where the request stands."""

    phase: RequestPhase | None = Field(default=None, description="Its lifecycle phase.")
    requester: str | None = Field(default=None, description="Who made it (spec.requester).")
    title: str | None = Field(default=None, description="The catalog item's title.")
    service: str | None = Field(default=None, description="The catalog item's service.")
    catalog_commit: str | None = Field(
        default=None, description="The CMDB commit of the catalog item it was accepted under."
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="The parameters as accepted: typed, with defaults filled in.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    change: str | None = Field(default=None, description="The Change that fulfils it.")
    submitted_at: datetime | None = Field(default=None, description="When it was made.")
    fulfilled_at: datetime | None = Field(default=None, description="When it was fulfilled.")
    time_to_fulfil: str | None = Field(default=None, description="Submitted → fulfilled.")
    sla: RequestSLA | None = Field(default=None, description="Its fulfilment target.")
    timeline: list[RequestEntry] = Field(default_factory=list, description="What happened.")


class RequestTarget(CamelModel):
    """How soon requests for catalog items are to be fulfilled."""

    item: str = Field(default="*", description="Catalog item name glob.", max_length=253)
    fulfil: GoDuration = Field(description="Time to fulfil, e.g. 4h or 72h.")
