"""The words of the Change lifecycle: the facts one tick knows about a change, the rules that
move it, and the `Move` a rule returns (the phase to enter, status, conditions, effects, or the
fact it still needs). `domain/change_lifecycle.py` holds the table and the transition function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from opsledger.domain.approval_policy import Identity
from opsledger.domain.changes import RecordVersion, Verdict
from opsledger.domain.outcome import ConditionUpdate
from opsledger.models.change import ChangePhase, ChangeSpec, ChangeType
from opsledger.models.policy import ApprovalPolicy


class Rule(StrEnum):
    """Why a change moves from one phase to the next."""

    CREATED = "created"
    CANCELLED = "cancelled"  # spec.cancelled before the change started
    APPROVAL_VOID = "approval-void"  # the spec was edited after approval
    EMERGENCY = "emergency"  # an emergency change approves itself, reviewed afterwards
    PRE_APPROVED = "pre-approved"  # a standard change's template is on the protected branch
    MERGED = "merged"  # the proposal was merged into the protected branch
    PULL_REQUEST_CLOSED = "pull-request-closed"  # closed without merging
    PROPOSAL_DELETED = "proposal-deleted"  # its branch deleted without merging
    SCHEDULED = "scheduled"  # approved: wait for the start gates
    STARTED = "started"  # every start gate lets it go; the prior state is captured
    WINDOW_MISSED = "window-missed"  # no eligible time is left before schedule.notAfter
    PLAN_APPLIED = "plan-applied"
    PERMIT_FINISHED = "permit-finished"  # spec.done, or the window ended
    PLAN_FAILED = "plan-failed"  # the API server refused a step: rolled back, Failed
    # a running change's spec is no longer the approved one: no further step, rolled back, Failed
    APPROVAL_VOIDED = "approval-voided"
    POST_CHECKS_PASS = "post-checks-pass"
    POST_CHECKS_FAILED = "post-checks-failed"  # rolled back, an Incident opened
    ROLLBACK_FAILED = "rollback-failed"  # some target's prior state could not be restored


class Need(StrEnum):
    """A fact a rule cannot decide without; the service finds it out and asks again."""

    TEMPLATE = "template"  # a standard change's template, as the protected branch holds it
    APPROVAL = "approval"  # what became of the proposal: the merge, its pull request
    BRANCH = "branch"  # whether the proposal branch still exists
    PRE_CHECKS = "pre-checks"  # the pre-checks and critical alerts, judged
    TARGETS = "targets"  # the target items' measured health (their status)
    PRIOR = "prior"  # the plan targets' state before the change, captured
    POST_CHECKS = "post-checks"  # the post-checks and critical alerts, judged


class Effect(StrEnum):
    """What a move asks the service to do to the outside world."""

    PROPOSE = "propose"  # push the proposal branch holding the change record
    OPEN_PULL_REQUEST = "open-pull-request"  # open (or update) its pull request on the forge
    APPLY_PLAN = "apply-plan"  # the plan's remaining steps, each stamped on its target
    ROLL_BACK = "roll-back"  # restore every target's prior state
    OPEN_INCIDENT = "open-incident"  # about the rollback, with `Move.why`


class PullRequest(Protocol):
    """A proposal's pull request as the forge tells it."""

    @property
    def number(self) -> int: ...
    @property
    def url(self) -> str: ...
    @property
    def open(self) -> bool: ...
    @property
    def merged(self) -> bool: ...
    @property
    def approvers(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Template:
    """A standard change's template as the protected branch holds it (commit None: it does not)."""

    path: str
    commit: str | None = None
    committer: str | None = None
    content: str | None = None  # the template file
    # the change's target items: class, labels, service, source (None: not found)
    items: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadBack:
    """What became of the proposal: the merge that brought its record in, who approved it (as
    the approval mode proves it), the policy in force before that merge, its pull request, its
    branch."""

    found: RecordVersion | None
    pull: PullRequest | None = None
    branch_exists: bool | None = None  # asked only when neither of the others decides
    approvals: tuple[Identity, ...] = ()  # proven identities, found only with `found`
    proof: str = "approval(s)"  # what an approval is in this mode, for messages
    policy: ApprovalPolicy | None = None  # approval-policy.yaml before the merge (None: none)
    policy_error: str | None = None  # it could not be read
    items: tuple[tuple[str | None, str | None], ...] = ()  # (service, owner) of each target
    # False while the forge has not caught up with the merge (its pull request still open)
    settled: bool = True
    # forge and signed modes: a change whose requester is unknown cannot be approved
    strict: bool = False


@dataclass(frozen=True)
class PlanResult:
    applied: int  # the plan steps applied in all
    error: str | None = None  # the API server's refusal
    waiting: str | None = None  # why the remaining steps wait (the window closed)


@dataclass(frozen=True)
class RollbackResult:
    why: str  # what went wrong (the move's `why`)
    problems: tuple[str, ...]  # targets whose prior state could not be restored
    incident: str  # the Incident opened about it


@dataclass(frozen=True)
class Facts:
    """A Change in one tick: as it stands, and what the tick found out (None: not yet)."""

    now: datetime
    cluster: str
    namespace: str
    name: str
    spec: ChangeSpec
    wanted: str  # the spec's hash
    phase: ChangePhase | None
    uid: str | None = None  # the Change object's: an approval binds it
    risk: str | None = None  # status.risk: how many approvals it needs
    approval: Mapping[str, Any] = field(default_factory=dict)
    execution: Mapping[str, Any] = field(default_factory=dict)
    window: Mapping[str, Any] = field(default_factory=dict)  # status.window
    level: Mapping[str, Any] | None = None  # the service's ServiceLevel: spec and status
    blocked_by: tuple[str, ...] = ()  # changes in progress on the same or dependent items
    unknown_targets: tuple[str, ...] = ()  # targets no ConfigurationItem is known for
    protected_branch: str | None = None  # the CMDB's; None: no CMDB is configured
    forge: bool = False  # a forge opens pull requests
    # found out on demand
    template: Template | None = None
    read_back: ReadBack | None = None
    pre_checks: Verdict | None = None
    targets: Mapping[str, Mapping[str, Any] | None] | None = None
    prior: Sequence[Mapping[str, Any]] | None = None
    started_at: datetime | None = None  # the clock once the prior state is captured
    post_checks: Verdict | None = None
    # reported back by effects
    plan: PlanResult | None = None
    rollback: RollbackResult | None = None

    @property
    def emergency(self) -> bool:
        return self.spec.type == ChangeType.EMERGENCY


@dataclass(frozen=True)
class Move:
    """One step: enter a phase by `rule` (or stay), with status, conditions and effects."""

    rule: Rule | None = None
    phase: ChangePhase | None = None  # the phase `rule` enters: TRANSITIONS fills it in
    reason: str = ""  # the transition's reason, in status.transitions and its Event
    warning: bool = False  # its Event is a Warning
    at: datetime | None = None  # when it happens (None: the tick's now)
    status: Mapping[str, Any] = field(default_factory=dict)
    conditions: tuple[ConditionUpdate, ...] = ()
    effects: tuple[Effect, ...] = ()
    needs: Need | None = None
    why: str = ""  # what went wrong, for ROLL_BACK and OPEN_INCIDENT
    done: bool = False  # the tick ends here


def enter(rule: Rule, reason: str, **extra: Any) -> Move:
    """Move by `rule`; the transition function looks up the phase it enters."""
    return Move(rule=rule, reason=reason, **extra)


def stay(*conditions: ConditionUpdate, **extra: Any) -> Move:
    """No phase change: report `conditions`, and the tick is done."""
    return Move(conditions=conditions, done=True, **extra)


def need(what: Need) -> Move:
    return Move(needs=what)
