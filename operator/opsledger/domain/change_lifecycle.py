"""The Change lifecycle as a transition function.

    PendingApproval → Approved → Scheduled → InProgress → Verifying → Completed
                   ↘ Rejected   ↘ Cancelled  ↘ (post-checks fail) → RolledBack (+ Incident)

`transition(facts)` looks at a Change as it stands in this tick (phase, spec, approval,
execution, and what the tick has found out so far) and returns one `Move`: the rule it applies,
whose target phase `TRANSITIONS` gives; the status fields and conditions that go with it; the
effects it asks of the outside world (propose, open a pull request, apply the plan, roll back,
open an Incident); or the fact it still `needs` (the approval read back from Git, health from
Prometheus, the targets' prior state). It does no I/O and reads no clock. The service asks again
after each fact it found out and each effect it carried out, until a move says the tick is `done`,
so one tick takes a change as far as it can go, and every phase entered is persisted before the
plan that follows it runs.

The words (`Facts`, `Move`, `Rule`, `Need`, `Effect`) are in `change_facts.py`, the approval
policies in `change_approval.py`, the start gates in `change_gates.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from opsledger.domain import changes
from opsledger.domain.change_approval import APPROVED, approval_void, seek_approval
from opsledger.domain.change_facts import (
    Effect,
    Facts,
    Move,
    Need,
    RollbackResult,
    Rule,
    enter,
    need,
    stay,
)
from opsledger.domain.change_gates import WINDOW_OPEN, StartFacts, evaluate, health_condition
from opsledger.domain.changes import Health
from opsledger.domain.conditions import READY
from opsledger.domain.durations import go_duration
from opsledger.domain.outcome import ConditionUpdate
from opsledger.domain.times import parse_time, rfc3339
from opsledger.models.change import ChangePhase, ChangeSpec, ChangeType
from opsledger.models.common import ConditionStatus
from opsledger.models.servicelevel import ServiceLevelSpec

P = ChangePhase
# Phases in which the change's Ready condition is False.
UNHAPPY = frozenset({P.REJECTED, P.FAILED, P.ROLLED_BACK})

# phase → the rules that leave it, and the phase each one enters. `transition` obeys it: a rule
# names itself, and the table says where it goes from the current phase (or refuses it).
TRANSITIONS: Mapping[ChangePhase | None, Mapping[Rule, ChangePhase]] = {
    None: {Rule.CREATED: P.PENDING_APPROVAL},
    P.PENDING_APPROVAL: {
        Rule.CANCELLED: P.CANCELLED,
        Rule.APPROVAL_VOID: P.PENDING_APPROVAL,
        Rule.EMERGENCY: P.APPROVED,
        Rule.PRE_APPROVED: P.APPROVED,
        Rule.MERGED: P.APPROVED,
        Rule.PULL_REQUEST_CLOSED: P.REJECTED,
        Rule.PROPOSAL_DELETED: P.REJECTED,
    },
    P.APPROVED: {
        Rule.CANCELLED: P.CANCELLED,
        Rule.APPROVAL_VOID: P.PENDING_APPROVAL,
        Rule.SCHEDULED: P.SCHEDULED,
    },
    P.SCHEDULED: {
        Rule.CANCELLED: P.CANCELLED,
        Rule.APPROVAL_VOID: P.PENDING_APPROVAL,
        Rule.STARTED: P.IN_PROGRESS,
        Rule.WINDOW_MISSED: P.FAILED,
    },
    P.IN_PROGRESS: {
        Rule.PLAN_APPLIED: P.VERIFYING,
        Rule.PERMIT_FINISHED: P.VERIFYING,
        Rule.PLAN_FAILED: P.FAILED,
        Rule.APPROVAL_VOIDED: P.FAILED,
    },
    P.VERIFYING: {
        Rule.APPROVAL_VOIDED: P.FAILED,
        Rule.POST_CHECKS_PASS: P.COMPLETED,
        Rule.POST_CHECKS_FAILED: P.ROLLED_BACK,
        Rule.ROLLBACK_FAILED: P.FAILED,
    },
    **{phase: {} for phase in changes.FINAL},
}


class TransitionError(ValueError):
    """A rule that does not leave the change's phase: a bug in the rules, not in the Change."""


def transition(f: Facts) -> Move:
    """The next move of the change described by `f`, its phase looked up in TRANSITIONS."""
    move = _decide(f)
    if move.rule is None:
        return move
    target = TRANSITIONS[f.phase].get(move.rule)
    if target is None:
        raise TransitionError(f"rule {move.rule} does not leave phase {f.phase}")
    # A phase of no return ends the tick.
    return dataclasses.replace(move, phase=target, done=move.done or target in changes.FINAL)


def _decide(f: Facts) -> Move:
    for rule in ANY_PHASE:
        move = rule(f)
        if move is not None:
            return move
    assert f.phase is not None  # `created` took care of a new change
    return BY_PHASE[f.phase](f)


# -- rules that apply in more than one phase ---------------------------------------------


def finished(f: Facts) -> Move | None:
    """Nothing moves a change once it completed, failed, was rejected, rolled back or cancelled."""
    return Move(done=True) if f.phase in changes.FINAL else None


def created(f: Facts) -> Move | None:
    return enter(Rule.CREATED, f"{f.spec.type} change created") if f.phase is None else None


def cancelled(f: Facts) -> Move | None:
    """spec.cancelled cancels a change that has not started; a running one carries on."""
    if not f.spec.cancelled or f.phase in changes.ACTIVE:
        return None
    return enter(Rule.CANCELLED, "spec.cancelled was set before the change started")


def voided(f: Facts) -> Move | None:
    """A spec edited after approval voids the approval: the change is proposed again (once it
    runs, its spec is what was approved)."""
    if not approval_void(f.approval, f.wanted) or f.phase in changes.ACTIVE:
        return None
    return enter(
        Rule.APPROVAL_VOID,
        "the spec was edited after approval: the approval is void and the change is proposed again",
        warning=True,
        status={"approval": None, "window": None},
    )


def approval_voided(reason: str) -> ConditionUpdate:
    return ConditionUpdate(APPROVED, ConditionStatus.FALSE, "ApprovalVoided", reason)


def tampered(f: Facts) -> Move | None:
    """What runs is what was approved: in every tick of a running change the spec's hash is
    checked against the approved one, before any step; and before a normal change's first step
    its approval is read back from the CMDB (a phase and an approval written into status past a
    webhook set to Ignore prove nothing). A mismatch applies no further step, restores what was
    applied and fails the change."""
    if f.phase not in changes.ACTIVE:
        return None
    approved = f.approval.get("specHash") if f.approval.get("approvedAt") else None
    if approved != f.wanted:
        why = (
            f"the spec running is not the one approved (its hash is {f.wanted[:19]}…, the "
            f"approval holds {str(approved)[:19]}…): no further step is applied; cancel this "
            "change and propose a new one for the edit"
        )
    else:
        unproven = _unproven(f)
        if unproven is None or isinstance(unproven, Move):
            return unproven
        why = unproven
    if f.rollback is not None:
        move = rolled_back(f.rollback, Rule.APPROVAL_VOIDED, f.execution, f.now)
        return dataclasses.replace(move, conditions=(approval_voided(why),))
    return Move(
        conditions=(approval_voided(why),),
        effects=(Effect.ROLL_BACK, Effect.OPEN_INCIDENT),
        why=why,
    )


def _unproven(f: Facts) -> Move | str | None:
    """Before a normal change's first plan step: the need to read its approval back, why it
    does not hold, or None."""
    first = not int(f.execution.get("appliedSteps") or 0) and f.plan is None
    if f.phase is not P.IN_PROGRESS or f.spec.type != ChangeType.NORMAL or not f.spec.plan:
        return None
    if not first:
        return None
    if f.read_back is None:
        return need(Need.APPROVAL)
    found = f.read_back.found
    if found is not None and found.sha == f.approval.get("commit"):
        return None
    return (
        "the approval on record is not what the CMDB holds (no merge brought this change's "
        "record in with the commit it names): no step is applied"
    )


ANY_PHASE: tuple[Callable[[Facts], Move | None], ...] = (
    finished,
    created,
    cancelled,
    voided,
    tampered,
)


def scheduled(f: Facts) -> Move:
    return enter(Rule.SCHEDULED, "approved: waiting for an eligible window and health")


# -- starting ----------------------------------------------------------------------------


def service_level(level: Mapping[str, Any] | None) -> ServiceLevelSpec | None:
    """The ServiceLevel's spec (a ValidationError when it is invalid)."""
    return None if level is None else ServiceLevelSpec.model_validate(level.get("spec") or {})


def start(f: Facts) -> Move:
    """A scheduled change starts once every start gate lets it go, its prior state captured."""
    level = service_level(f.level)
    decision = changes.window_for(f.now, f.spec, f.level) if f.level is not None else None
    status: dict[str, Any] = {}
    if decision is not None:
        nxt = decision.next
        status["window"] = {"start": rfc3339(nxt.start), "end": rfc3339(nxt.end)} if nxt else None
    gated = evaluate(
        StartFacts(
            now=f.now,
            spec=f.spec,
            level=level,
            level_status=(f.level or {}).get("status") or {},
            decision=decision,
            blocked_by=f.blocked_by,
            pre_checks=f.pre_checks,
            targets=f.targets,
        )
    )
    if gated.needs is not None:
        return need(gated.needs)
    if gated.final:
        return enter(
            Rule.WINDOW_MISSED,
            gated.reason,
            warning=True,
            status=status,
            conditions=gated.conditions,
        )
    if not gated.go:
        return stay(*gated.conditions, status=status)
    recheck = approval_recheck(f)
    if recheck is not None:
        return recheck
    if f.prior is None or f.started_at is None:
        return need(Need.PRIOR)
    if f.emergency:
        started = "started now: an emergency change skips the windows"
    else:
        ends = rfc3339(decision.next.end) if decision and decision.next else "?"
        started = f"started in the window ending {ends}"
    execution = {"startedAt": rfc3339(f.started_at), "appliedSteps": 0, "prior": list(f.prior)}
    return enter(
        Rule.STARTED,
        started,
        at=f.started_at,
        done=True,  # the plan runs from the next tick, once InProgress and the prior are stored
        status={**status, "execution": execution},
        conditions=gated.conditions,
    )


def approval_recheck(f: Facts) -> Move | None:
    """Right before a normal change starts, its approval is read back from the CMDB again: the
    protected branch must still hold this change's record (spec hash and uid) as brought in by
    the commit its approval names. The approval in status is the operator's note of it, not the
    proof (a status write that got past a webhook with failurePolicy Ignore proves nothing).
    None: it holds."""
    if f.spec.type != ChangeType.NORMAL:
        return None
    if f.read_back is None:
        return need(Need.APPROVAL)
    found = f.read_back.found
    if found is not None and found.sha == f.approval.get("commit"):
        return None
    return enter(
        Rule.APPROVAL_VOID,
        "the approval on record is not what the CMDB holds (its record is gone or was brought "
        "in by another commit): the change is proposed again",
        warning=True,
        status={"approval": None, "window": None},
    )


# -- carrying out ------------------------------------------------------------------------


def permit_finished(spec: ChangeSpec, window: Mapping[str, Any], now: datetime) -> bool:
    """A permit (no plan) is finished when spec.done is set or its window has ended."""
    end = parse_time(window.get("end"))
    return spec.done or (end is not None and end <= now)


def verify_after(spec: ChangeSpec, now: datetime) -> datetime:
    """When the post-checks run: after the soak."""
    return now + (go_duration(spec.soak) if spec.soak else timedelta(0))


def verifying_reason(spec: ChangeSpec) -> str:
    what = "plan applied" if spec.plan else "permit finished"
    when = f"after a soak of {spec.soak}" if spec.soak else "now (no soak)"
    return f"{what}; post-checks {when}"


def carry_out(f: Facts) -> Move:
    """Apply the plan (a refusal rolls back and fails), or wait for the permit to finish; then
    verify after the soak."""
    execution = dict(f.execution)
    if f.spec.plan:
        if f.rollback is not None:
            return rolled_back(f.rollback, Rule.PLAN_FAILED, f.execution, f.now)
        if f.plan is None:
            return Move(effects=(Effect.APPLY_PLAN,))
        if f.plan.error is not None:
            execution["appliedSteps"] = int(execution.get("appliedSteps") or 0)
            return Move(
                status={"execution": execution},
                effects=(Effect.ROLL_BACK, Effect.OPEN_INCIDENT),
                why=f"applying the plan failed: {f.plan.error}",
            )
        execution["appliedSteps"] = f.plan.applied
        if f.plan.waiting is not None:  # started inside the window: no new step outside it
            closed = ConditionUpdate(
                WINDOW_OPEN, ConditionStatus.FALSE, "WindowClosed", f.plan.waiting
            )
            return stay(closed, status={"execution": execution})
        rule = Rule.PLAN_APPLIED
    elif permit_finished(f.spec, f.window, f.now):
        rule = Rule.PERMIT_FINISHED
    else:
        return stay()  # a permit: people work on the targets until done or the window ends
    execution["verifyAfter"] = rfc3339(verify_after(f.spec, f.now))
    return enter(rule, verifying_reason(f.spec), status={"execution": execution})


# -- verifying ---------------------------------------------------------------------------


def verify(f: Facts) -> Move:
    """After the soak: complete when the post-checks pass, wait while health is unknown, roll
    back when they fail."""
    if f.rollback is not None:
        return rolled_back(f.rollback, Rule.POST_CHECKS_FAILED, f.execution, f.now)
    due = parse_time(f.execution.get("verifyAfter"))
    if due is not None and f.now < due:
        return stay()  # soaking
    if f.post_checks is None:
        return need(Need.POST_CHECKS)
    verdict = f.post_checks
    report = health_condition(verdict, "post-checks")
    if verdict.health is Health.UNKNOWN:
        return stay(report)
    if verdict.health is Health.UNHEALTHY:
        return Move(
            conditions=(report,),
            effects=(Effect.ROLL_BACK, Effect.OPEN_INCIDENT),
            why=f"post-checks failed: {verdict.message}",
        )
    return enter(
        Rule.POST_CHECKS_PASS,
        "post-checks pass",
        status={"execution": {**f.execution, "finishedAt": rfc3339(f.now)}},
        conditions=(report,),
    )


def rolled_back(
    result: RollbackResult, rule: Rule, execution: Mapping[str, Any], now: datetime
) -> Move:
    """After a rollback: by `rule` (RolledBack after failed post-checks, Failed after a failed
    plan), or Failed when some target's prior state could not be restored; the Incident named."""
    problems = result.problems
    restored = "prior state restored" if not problems else "restore failed: " + "; ".join(problems)
    if problems and rule is Rule.POST_CHECKS_FAILED:
        rule = Rule.ROLLBACK_FAILED
    return enter(
        rule,
        f"{result.why}; {restored}; incident {result.incident} opened",
        warning=True,
        status={
            "execution": {**execution, "finishedAt": rfc3339(now)},
            "incident": result.incident,
        },
    )


BY_PHASE: Mapping[ChangePhase, Callable[[Facts], Move]] = {
    P.PENDING_APPROVAL: seek_approval,
    P.APPROVED: scheduled,
    P.SCHEDULED: start,
    P.IN_PROGRESS: carry_out,
    P.VERIFYING: verify,
}


# -- Ready -------------------------------------------------------------------------------


def ready(phase: ChangePhase | None, transitions: Sequence[Mapping[str, Any]]) -> ConditionUpdate:
    """A change's Ready follows its phase: False once rejected, failed or rolled back; its
    message is the last transition's reason."""
    good = phase not in UNHAPPY
    last = transitions[-1]["reason"] if transitions else "accepted"
    return ConditionUpdate(
        READY,
        ConditionStatus.TRUE if good else ConditionStatus.FALSE,
        (phase or P.PENDING_APPROVAL).value,
        last,
    )
