"""The shape of records in the CMDB repository (what `opsledger cmdb validate` checks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from opsledger.models.change import Approval, ChangePhase, ChangeSpec, Transition, Window
from opsledger.models.common import API_GROUP, API_VERSION, CamelModel, K8sName
from opsledger.models.configitem import Availability, ConfigurationItemSpec, Relationship
from opsledger.models.incident import IncidentSpec, IncidentState, SLAStatus, TimelineEntry
from opsledger.models.request import RequestEntry, RequestPhase, RequestSLA, ServiceRequestSpec
from opsledger.models.servicelevel import Priority

RECORD_API_VERSION = f"{API_GROUP}/{API_VERSION}"


class RecordMetadata(CamelModel):
    """Where the record's object lives."""

    cluster: K8sName = Field(description="The cluster's name (OPSLEDGER_CLUSTER).")
    namespace: K8sName = Field(description="The object's namespace.")
    name: K8sName = Field(description="The object's name.")
    uid: str | None = Field(
        default=None,
        description=(
            "The object's uid (Change records): an approval binds it, so a Change deleted and "
            "created again under the same name is proposed afresh."
        ),
    )


class ConfigurationItemRecord(CamelModel):
    """One configuration item as committed to the CMDB."""

    api_version: Literal["opsledger.io/v1alpha1"] = Field(
        default="opsledger.io/v1alpha1", description="Record format version."
    )
    kind: Literal["ConfigurationItemRecord"] = Field(
        default="ConfigurationItemRecord", description="Record kind."
    )
    metadata: RecordMetadata = Field(description="Cluster, namespace and name.")
    spec: ConfigurationItemSpec = Field(description="The declared item, class resolved.")
    relationships: list[Relationship] = Field(
        default_factory=list, description="Declared and discovered relationships."
    )
    observed: dict[str, Any] = Field(
        default_factory=dict, description="What was observed on the source object."
    )
    drift: list[str] = Field(
        default_factory=list, description="Declared attributes that differ from the observed."
    )
    retired_reason: str | None = Field(
        default=None, description="Why the item was retired, e.g. its source was deleted."
    )
    availability: Availability | None = Field(
        default=None,
        description="Percent of time up over 1d, 7d and 30d, to 0.01 % (the record changes "
        "only when a figure does).",
    )


class IncidentRecord(CamelModel):
    """One incident as committed to the CMDB on each change of state."""

    api_version: Literal["opsledger.io/v1alpha1"] = Field(
        default="opsledger.io/v1alpha1", description="Record format version."
    )
    kind: Literal["IncidentRecord"] = Field(default="IncidentRecord", description="Record kind.")
    metadata: RecordMetadata = Field(description="Cluster, namespace and name.")
    spec: IncidentSpec = Field(description="The incident as people declared it.")
    priority: Priority = Field(description="P1–P5 from impact × urgency.")
    state: IncidentState = Field(description="The state last handled.")
    opened_at: datetime = Field(description="When it was opened.")
    acknowledged_at: datetime | None = Field(default=None, description="When acknowledged.")
    resolved_at: datetime | None = Field(default=None, description="When resolved.")
    time_to_acknowledge: str | None = Field(default=None, description="Opened → acknowledged.")
    time_to_resolve: str | None = Field(default=None, description="Opened → resolved.")
    sla: SLAStatus | None = Field(default=None, description="Due times and breaches.")
    timeline: list[TimelineEntry] = Field(default_factory=list, description="What happened.")
    problem: str | None = Field(default=None, description="The problem it recurs under.")
    suspected_cause: str | None = Field(default=None, description="A change suspected of it.")


class ServiceRequestRecord(CamelModel):
    """One service request as committed to the CMDB on each change of phase."""

    api_version: Literal["opsledger.io/v1alpha1"] = Field(
        default="opsledger.io/v1alpha1", description="Record format version."
    )
    kind: Literal["ServiceRequestRecord"] = Field(
        default="ServiceRequestRecord", description="Record kind."
    )
    metadata: RecordMetadata = Field(description="Cluster, namespace and name.")
    spec: ServiceRequestSpec = Field(description="The request as it was made.")
    phase: RequestPhase = Field(description="Its lifecycle phase.")
    title: str | None = Field(default=None, description="The catalog item's title.")
    service: str | None = Field(default=None, description="The catalog item's service.")
    catalog_commit: str | None = Field(default=None, description="The catalog item's commit.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="As accepted.")
    change: str | None = Field(default=None, description="The Change that fulfils it.")
    submitted_at: datetime = Field(description="When it was made.")
    fulfilled_at: datetime | None = Field(default=None, description="When it was fulfilled.")
    time_to_fulfil: str | None = Field(default=None, description="Submitted → fulfilled.")
    sla: RequestSLA | None = Field(default=None, description="Its fulfilment target.")
    timeline: list[RequestEntry] = Field(default_factory=list, description="What happened.")


class ChangeRecord(CamelModel):
    """One change as proposed for approval and, once approved, as it is carried out."""

    api_version: Literal["opsledger.io/v1alpha1"] = Field(
        default="opsledger.io/v1alpha1", description="Record format version."
    )
    kind: Literal["ChangeRecord"] = Field(default="ChangeRecord", description="Record kind.")
    metadata: RecordMetadata = Field(description="Cluster, namespace and name.")
    spec: ChangeSpec = Field(
        description="The change as requested (secret-looking values redacted)."
    )
    spec_hash: str | None = Field(
        default=None,
        description=(
            "sha256 of the requested spec. Merging a proposal holding this hash into the "
            "protected branch approves exactly that spec."
        ),
    )
    phase: ChangePhase = Field(description="The phase when the record was written.")
    approval: Approval | None = Field(default=None, description="Who approved it, and when.")
    window: Window | None = Field(default=None, description="The window it runs in.")
    risk: str | None = Field(default=None, description="Assessed risk: low, medium or high.")
    affected: list[str] = Field(
        default_factory=list, description="Configuration items affected (targets and dependents)."
    )
    incident: str | None = Field(default=None, description="Incident opened on rollback.")
    transitions: list[Transition] = Field(default_factory=list, description="What happened.")


class ProblemIncident(CamelModel):
    """One of the incidents a problem groups."""

    name: K8sName = Field(description="The Incident's name.")
    opened_at: datetime = Field(description="When it was opened.")
    state: IncidentState = Field(description="Its state when the record was written.")
    root_cause: str | None = Field(default=None, description="Its root cause, if found.")


class ProblemRecord(CamelModel):
    """Recurring incidents on one configuration item or service, and what is known of them."""

    api_version: Literal["opsledger.io/v1alpha1"] = Field(
        default="opsledger.io/v1alpha1", description="Record format version."
    )
    kind: Literal["ProblemRecord"] = Field(default="ProblemRecord", description="Record kind.")
    metadata: RecordMetadata = Field(description="Cluster, namespace and problem name.")
    subject_kind: Literal["ConfigurationItem", "Service"] = Field(
        description="What the incidents recur on."
    )
    subject: str = Field(description="The item's or the service's name.")
    state: Literal["Open", "KnownError"] = Field(
        description="Open; KnownError once a root cause is known."
    )
    detected_at: datetime = Field(description="When the incidents first recurred enough.")
    known_error: str | None = Field(default=None, description="The root cause, once known.")
    workaround: str | None = Field(
        default=None, description="How the incident with that root cause was resolved."
    )
    incidents: list[ProblemIncident] = Field(description="The incidents, oldest first.")


# folder under clusters/<cluster>/<namespace>/ → the record model kept there
class ChangeReviewRecord(CamelModel):
    """An emergency change's post-implementation review: merged once reviewers have looked."""

    api_version: Literal["opsledger.io/v1alpha1"] = Field(
        default="opsledger.io/v1alpha1", description="Record format version."
    )
    kind: Literal["ChangeReview"] = Field(default="ChangeReview", description="Record kind.")
    metadata: RecordMetadata = Field(description="The change's cluster, namespace, name, uid.")
    requester: str | None = Field(default=None, description="Who broke glass.")
    summary: str | None = Field(default=None, description="What the change says it does.")
    targets: list[str] = Field(default_factory=list, description="Its target items.")
    plan: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Its plan, redacted.",
    )
    phase: ChangePhase | None = Field(default=None, description="How it ended.")
    transitions: list[Transition] = Field(default_factory=list, description="What happened.")
    incident: str | None = Field(default=None, description="Incident opened on rollback.")
    questions: list[str] = Field(default_factory=list, description="What reviewers are asked.")


RECORD_FOLDERS: dict[str, type[CamelModel]] = {
    "reviews": ChangeReviewRecord,
    "configurationitems": ConfigurationItemRecord,
    "incidents": IncidentRecord,
    "changes": ChangeRecord,
    "problems": ProblemRecord,
    "servicerequests": ServiceRequestRecord,
}
