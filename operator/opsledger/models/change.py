"""Change: a planned modification, approved by merging its pull request in the CMDB."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator

from opsledger.models.common import (
    CamelModel,
    GoDuration,
    K8sName,
    ObjectReference,
    PromQL,
    Requester,
    StatusBase,
)
from opsledger.models.configitem import CMDBRecordStatus


class ChangeType(StrEnum):
    STANDARD = "standard"
    NORMAL = "normal"
    EMERGENCY = "emergency"


class PatchType(StrEnum):
    MERGE = "merge"
    JSON = "json"
    APPLY = "apply"


class ChangePhase(StrEnum):
    PENDING_APPROVAL = "PendingApproval"
    APPROVED = "Approved"
    SCHEDULED = "Scheduled"
    IN_PROGRESS = "InProgress"
    VERIFYING = "Verifying"
    COMPLETED = "Completed"
    REJECTED = "Rejected"
    FAILED = "Failed"
    ROLLED_BACK = "RolledBack"
    CANCELLED = "Cancelled"


class Schedule(CamelModel):
    """The period in which the change may start."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": (
                        "!has(self.notBefore) || !has(self.notAfter) || "
                        "timestamp(self.notAfter) > timestamp(self.notBefore)"
                    ),
                    "message": (
                        "notAfter must be later than notBefore: the change would have no time "
                        "to start; move notAfter after notBefore"
                    ),
                    "fieldPath": ".notAfter",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    not_before: datetime | None = Field(
        default=None, description="Earliest start (RFC 3339), e.g. 2026-12-01T22:00:00Z."
    )
    not_after: datetime | None = Field(
        default=None, description="Latest start (RFC 3339); must be after notBefore."
    )

    @model_validator(mode="after")
    def _end_after_start(self) -> Schedule:
        if self.not_before and self.not_after and self.not_after <= self.not_before:
            raise ValueError("schedule.notAfter must be later than schedule.notBefore")
        return self


class FreezeException(CamelModel):
    """Leave to start while the service is frozen (a freeze, a blackout or a calendar event),
    until `expires`. Approved with the change under the approval policy's `exceptions` rule, by
    people it names, besides the change's own approvals."""

    reason: str = Field(
        description="Why this change cannot wait for the freeze to end.",
        min_length=1,
        max_length=1024,
    )
    expires: datetime = Field(
        description="Until when the exception holds (RFC 3339); after it the freeze holds the "
        "change again, and no new step starts."
    )


class PlannedImpact(CamelModel):
    """What the change is expected to disturb: objectives of its service's ServiceLevel. While it
    is in progress, and for good once it completes, that time is left out of their error budget
    (status.budgetExclusions on the ServiceLevel); a change that fails or is rolled back keeps
    nothing out. Part of what is approved."""

    objectives: list[
        Annotated[
            str,
            Field(
                description="The name of an objective of the ServiceLevel of spec.service.",
                pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                max_length=63,
            ),
        ]
    ] = Field(
        description="The objectives whose budget the planned work should not burn.",
        min_length=1,
        max_length=16,
    )
    reason: str | None = Field(
        default=None,
        description="Why the impact is expected, e.g. a failover drains one region.",
        max_length=1024,
    )


class PlanStep(CamelModel):
    """One patch the operator applies to carry out the change."""

    target: ObjectReference = Field(description="The object to patch, in the change's namespace.")
    patch_type: PatchType = Field(
        default=PatchType.MERGE,
        description="merge (JSON merge patch), json (JSON patch) or apply (server-side apply).",
    )
    patch: Any = Field(
        description="The patch document: an object for merge and apply, a list for json.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class HealthCheck(CamelModel):
    """A PromQL query whose value must stay below or above a threshold."""

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

    name: str = Field(description="A short name for the check, e.g. error-ratio.", max_length=63)
    query: PromQL = Field(
        description="PromQL returning one value (a scalar or a single-series vector).",
        min_length=1,
        max_length=4096,
    )
    below: float | None = Field(default=None, description="Healthy while the value is below this.")
    above: float | None = Field(default=None, description="Healthy while the value is above this.")

    @model_validator(mode="after")
    def _one_threshold(self) -> HealthCheck:
        if (self.below is None) == (self.above is None):
            raise ValueError(f"check {self.name!r}: set exactly one of below or above")
        return self


class Checks(CamelModel):
    """Health checks before the change starts and after it is carried out."""

    pre: list[HealthCheck] = Field(
        default_factory=list,
        description="Must pass before the change starts; the change waits while they fail.",
        max_length=32,
    )
    post: list[HealthCheck] = Field(
        default_factory=list,
        description="Must pass after the plan and the soak; a failure rolls the change back.",
        max_length=32,
    )
    no_critical_alerts: bool = Field(
        default=True,
        description="Also require that no critical alert is firing for the change's service.",
    )


class ChangeSpec(CamelModel):
    """What is to change, where, when, and how its health is judged."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.type != 'standard' || has(self.template)",
                    "message": (
                        "a standard change must name its pre-approved template in spec.template"
                    ),
                    "fieldPath": ".template",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "!has(self.freezeException) || self.type == 'normal'",
                    "message": (
                        "a freeze exception is approved by pull request: only a normal change "
                        "may carry one (an emergency change is not held by freezes)"
                    ),
                    "fieldPath": ".freezeException",
                    "reason": "FieldValueForbidden",
                },
                {
                    "rule": "!has(self.plannedImpact) || self.type != 'emergency'",
                    "message": (
                        "an emergency change's impact counts against the error budget: only a "
                        "normal or standard change, approved beforehand, may declare "
                        "plannedImpact"
                    ),
                    "fieldPath": ".plannedImpact",
                    "reason": "FieldValueForbidden",
                },
                {
                    "rule": "self.type == oldSelf.type",
                    "message": "spec.type is immutable: create a new Change for another type",
                    "fieldPath": ".type",
                },
                {
                    "rule": (
                        "has(self.requester) == has(oldSelf.requester) && "
                        "(!has(self.requester) || self.requester == oldSelf.requester)"
                    ),
                    "message": (
                        "spec.requester is who the API server says created the Change: it "
                        "cannot be set or changed afterwards"
                    ),
                    "fieldPath": ".requester",
                },
                {
                    "rule": (
                        "has(self.onBehalfOf) == has(oldSelf.onBehalfOf) && "
                        "(!has(self.onBehalfOf) || self.onBehalfOf == oldSelf.onBehalfOf)"
                    ),
                    "message": "spec.onBehalfOf cannot be set or changed after creation",
                    "fieldPath": ".onBehalfOf",
                },
            ]
        }
    )

    type: ChangeType = Field(
        description=(
            "standard (pre-approved from a template), normal (approved by merging its pull "
            "request) or emergency (skips windows; reviewed afterwards)."
        )
    )
    summary: str = Field(
        description="One line saying what the change does.", min_length=1, max_length=200
    )
    description: str | None = Field(
        default=None, description="Why the change is made and what it touches.", max_length=8192
    )
    service: str = Field(
        description="The ServiceLevel spec.service whose windows, freezes and budget apply.",
        min_length=1,
        max_length=253,
    )
    targets: list[K8sName] = Field(
        default_factory=list,
        description="Names of the ConfigurationItems (in this namespace) the change affects.",
        max_length=128,
    )
    template: str | None = Field(
        default=None,
        description="For a standard change: the pre-approved template in the CMDB repository.",
        max_length=253,
    )
    schedule: Schedule | None = Field(
        default=None, description="When the change may start; without it, the next window."
    )
    freeze_exception: FreezeException | None = Field(
        default=None,
        description="Leave to start during a freeze, blackout or calendar event (normal changes "
        "only; approved separately under the approval policy's exceptions rule).",
    )
    planned_impact: PlannedImpact | None = Field(
        default=None,
        description="Objectives the planned work is expected to disturb: while it runs (and "
        "only if it completes) that time is left out of their error budget.",
    )
    plan: list[PlanStep] = Field(
        default_factory=list,
        description="Patches to apply. Without a plan the change is a permit for manual work.",
        max_length=64,
    )
    checks: Checks | None = Field(default=None, description="Pre- and post-change health checks.")
    soak: GoDuration | None = Field(
        default=None, description="Wait after the plan before the post-checks, e.g. 1m."
    )
    done: bool = Field(
        default=False,
        description=(
            "For a permit (no plan): set true when the manual work is finished; the post-checks "
            "then run. Not part of what is approved."
        ),
    )
    cancelled: bool = Field(
        default=False,
        description="Set true to cancel a change that has not started. Not part of the approval.",
    )
    requester: Requester | None = Field(
        default=None,
        description=(
            "Who created the Change: filled in by OpsLedger's admission webhook from the "
            "authenticated user (anything set by hand is replaced), immutable afterwards. The "
            "requester never counts as an approver."
        ),
    )
    on_behalf_of: Requester | None = Field(
        default=None,
        description=(
            "Who asked for the change, when OpsLedger made it to fulfil their ServiceRequest: "
            "only OpsLedger's own identity may set it (the admission webhook refuses anyone "
            "else), and like the requester they never count as an approver."
        ),
    )

    @model_validator(mode="after")
    def _exception_only_when_normal(self) -> ChangeSpec:
        if self.freeze_exception is not None and self.type != ChangeType.NORMAL:
            raise ValueError(
                "a freeze exception is approved by pull request: only a normal change may carry "
                "one (an emergency change is not held by freezes)"
            )
        return self

    @model_validator(mode="after")
    def _impact_only_when_approved(self) -> ChangeSpec:
        if self.planned_impact is not None and self.type == ChangeType.EMERGENCY:
            raise ValueError(
                "an emergency change's impact counts against the error budget: only a normal or "
                "standard change, approved beforehand, may declare plannedImpact"
            )
        return self


class Approval(CamelModel):
    """How and by whom the change was approved."""

    proposal_branch: str | None = Field(
        default=None, description="The branch in the CMDB repository holding the proposal."
    )
    proposal_commit: str | None = Field(
        default=None, description="The commit on the proposal branch holding the record."
    )
    commit: str | None = Field(
        default=None, description="The commit that brought the record onto the protected branch."
    )
    approver: str | None = Field(default=None, description="Who merged the proposal.")
    pull_request: str | None = Field(
        default=None, description="The proposal's pull request on the forge, where one is set."
    )
    pull_request_number: int | None = Field(default=None, description="Its number.")
    reviewers: list[str] = Field(
        default_factory=list, description="Who approved the pull request in a review."
    )
    approved_at: datetime | None = Field(default=None, description="When it was merged.")
    exception_approver: str | None = Field(
        default=None,
        description="Who approved the change's freeze exception, under the policy's exceptions "
        "rule.",
    )
    spec_hash: str | None = Field(
        default=None, description="Hash of the approved spec; an edit voids the approval."
    )


class Review(CamelModel):
    """An emergency change's post-implementation review: a proposal in the CMDB repository that
    reviewers merge once they have looked at what was done."""

    branch: str | None = Field(default=None, description="The review's branch in the CMDB.")
    commit: str | None = Field(default=None, description="The commit holding the review record.")
    pull_request: str | None = Field(default=None, description="Its pull request, with a forge.")
    reviewed_at: datetime | None = Field(default=None, description="When it was merged.")


class Window(CamelModel):
    """A period in which the change may run."""

    start: datetime | None = Field(default=None, description="Start of the window.")
    end: datetime | None = Field(default=None, description="End of the window.")


class Transition(CamelModel):
    """One step of the change's lifecycle."""

    phase: ChangePhase = Field(description="The phase entered.")
    at: datetime = Field(description="When it was entered.")
    reason: str | None = Field(default=None, description="Why.", max_length=1024)


class PriorState(CamelModel):
    """A plan target as it was before the change, to restore it exactly on rollback."""

    target: ObjectReference = Field(description="The object.")
    existed: bool = Field(description="Whether it existed before the change.")
    object: dict[str, Any] | None = Field(
        default=None,
        description="Its metadata (labels, annotations) and spec before the change.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class Execution(CamelModel):
    """Progress of carrying out the plan; kept in status so a restart resumes, never repeats."""

    started_at: datetime | None = Field(default=None, description="When the plan started.")
    applied_steps: int = Field(default=0, description="Plan steps applied so far.")
    prior: list[PriorState] = Field(
        default_factory=list, description="The targets' state before the first step."
    )
    verify_after: datetime | None = Field(
        default=None, description="End of the soak: when the post-checks run."
    )
    finished_at: datetime | None = Field(default=None, description="When it ended.")


class ChangeStatus(StatusBase):
    """Where the change stands."""

    phase: ChangePhase | None = Field(default=None, description="The lifecycle phase.")
    requester: str | None = Field(
        default=None, description="Who created it, as the API server said (spec.requester)."
    )
    approval: Approval | None = Field(default=None, description="The approval, once given.")
    window: Window | None = Field(
        default=None, description="The window it runs in, or the next eligible one."
    )
    risk: str | None = Field(default=None, description="Assessed risk: low, medium or high.")
    risk_score: int | None = Field(default=None, description="The score behind the risk level.")
    risk_factors: list[str] = Field(
        default_factory=list, description="What raised the risk: criticality, blast radius, ..."
    )
    conflicts: list[str] = Field(
        default_factory=list,
        description="Other open changes overlapping in time on the same or dependent items.",
    )
    transitions: list[Transition] = Field(
        default_factory=list, description="Every phase the change went through, with times."
    )
    execution: Execution | None = Field(default=None, description="Progress of the plan.")
    silences: list[str] | None = Field(
        default=None,
        description="Ids of the Alertmanager silences held while the change runs.",
        max_length=130,
    )
    incident: str | None = Field(
        default=None, description="The Incident opened when the change was rolled back."
    )
    review_required: bool | None = Field(
        default=None,
        description="Emergency changes: a post-implementation review is due until its review "
        "proposal is merged.",
    )
    review: Review | None = Field(default=None, description="The post-implementation review.")
    cmdb: CMDBRecordStatus | None = Field(default=None, description="The change record.")
