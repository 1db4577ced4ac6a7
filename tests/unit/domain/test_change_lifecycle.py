"""The Change lifecycle as a transition function: every transition of the table, and what each
phase asks for (facts to find out, effects to carry out), at a fixed clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsledger.domain import change_approval, change_lifecycle, changes
from opsledger.domain.approval_policy import Identity
from opsledger.domain.change_facts import (
    Effect,
    Facts,
    Move,
    Need,
    PlanResult,
    ReadBack,
    RollbackResult,
    Rule,
    Template,
    enter,
)
from opsledger.domain.change_lifecycle import TRANSITIONS, TransitionError, ready, transition
from opsledger.domain.changes import RecordVersion, Verdict
from opsledger.models.change import ChangePhase, ChangeSpec
from opsledger.models.common import ConditionStatus
from tests.unit.domain.test_change_approval import PR  # the pull request as the policies see it

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
P = ChangePhase
TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
PLAN = [
    {
        "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "patch": {"spec": {"replicas": 3}},
    }
]
LEVEL = {"spec": {"service": "shop"}, "status": {}}
ITEMS = {  # the target items as a standard-change template's bounds see them
    "web": {
        "class": "Deployment",
        "labels": {},
        "service": "shop",
        "source": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
    }
}  # no windows: any time outside a freeze


def _spec(**extra: Any) -> ChangeSpec:
    return ChangeSpec.model_validate(
        {"type": "normal", "summary": "Upgrade web", "service": "shop", "targets": ["web"], **extra}
    )


def _facts(phase: ChangePhase | None, spec: ChangeSpec | None = None, **extra: Any) -> Facts:
    """A change in `phase`; a running one (InProgress, Verifying) approved as it stands."""
    spec = spec or _spec()
    if phase in changes.ACTIVE:
        extra.setdefault("approval", _approved(spec))
    if phase in (P.SCHEDULED, P.IN_PROGRESS):  # read back before it starts and runs its plan
        extra.setdefault("read_back", _merged_by("Alice <alice@x>"))
    return Facts(
        now=T0,
        cluster="test",
        namespace="ns",
        name="upgrade",
        spec=spec,
        wanted=changes.spec_hash(spec),
        phase=phase,
        level=LEVEL,
        protected_branch="main",
        **extra,
    )


def _proposed(spec: ChangeSpec | None = None, **approval: Any) -> dict[str, Any]:
    wanted = changes.spec_hash(spec or _spec())
    return {"proposalBranch": "changes/test/ns/upgrade", "proposalCommit": "p1", **approval} | {
        "specHash": wanted
    }


def _approved(spec: ChangeSpec | None = None) -> dict[str, Any]:
    return {
        "approvedAt": "2026-11-25T10:00:00Z",
        "specHash": changes.spec_hash(spec or _spec()),
        "commit": "abcdef1234567890",  # the merge that approved it (_merge)
    }


def _merge() -> RecordVersion:
    return RecordVersion("abcdef1234567890", "Alice <alice@x>", T0 - timedelta(hours=1), "x")


def _merged_by(*names: str, kind: str = "git") -> ReadBack:
    return ReadBack(_merge(), approvals=tuple(Identity(kind, n) for n in names))


def _failed(message: str) -> Verdict:
    verdict = Verdict()
    verdict.fail(message)
    return verdict


# -- every transition of the table -------------------------------------------------------

CASES: dict[tuple[ChangePhase | None, Rule], Callable[[], Facts]] = {
    (None, Rule.CREATED): lambda: _facts(None),
    (P.PENDING_APPROVAL, Rule.CANCELLED): lambda: _facts(P.PENDING_APPROVAL, _spec(cancelled=True)),
    (P.APPROVED, Rule.CANCELLED): lambda: _facts(P.APPROVED, _spec(cancelled=True)),
    (P.SCHEDULED, Rule.CANCELLED): lambda: _facts(P.SCHEDULED, _spec(cancelled=True)),
    (P.PENDING_APPROVAL, Rule.APPROVAL_VOID): lambda: _facts(
        P.PENDING_APPROVAL, approval=_approved(_spec(summary="before the edit"))
    ),
    (P.APPROVED, Rule.APPROVAL_VOID): lambda: _facts(
        P.APPROVED, approval=_approved(_spec(summary="before the edit"))
    ),
    (P.SCHEDULED, Rule.APPROVAL_VOID): lambda: _facts(
        P.SCHEDULED, approval=_approved(_spec(summary="before the edit"))
    ),
    (P.PENDING_APPROVAL, Rule.EMERGENCY): lambda: _facts(
        P.PENDING_APPROVAL, _spec(type="emergency")
    ),
    (P.PENDING_APPROVAL, Rule.PRE_APPROVED): lambda: _facts(
        P.PENDING_APPROVAL,
        _spec(type="standard", template="restart"),
        template=Template(
            "standard-changes/restart.yaml", "t1", "Dana <dana@x>", "summary: Restart\n", ITEMS
        ),
    ),
    (P.PENDING_APPROVAL, Rule.MERGED): lambda: _facts(
        P.PENDING_APPROVAL, approval=_proposed(), read_back=_merged_by("Alice <alice@x>")
    ),
    (P.PENDING_APPROVAL, Rule.PULL_REQUEST_CLOSED): lambda: _facts(
        P.PENDING_APPROVAL,
        forge=True,
        approval=_proposed(pullRequestNumber=7),
        read_back=ReadBack(None, PR(open=False)),
    ),
    (P.PENDING_APPROVAL, Rule.PROPOSAL_DELETED): lambda: _facts(
        P.PENDING_APPROVAL, approval=_proposed(), read_back=ReadBack(None, branch_exists=False)
    ),
    (P.APPROVED, Rule.SCHEDULED): lambda: _facts(P.APPROVED, approval=_approved()),
    (P.SCHEDULED, Rule.STARTED): lambda: _facts(
        P.SCHEDULED,
        approval=_approved(),
        pre_checks=Verdict(),
        targets={},
        prior=[],
        started_at=T0 + timedelta(seconds=2),
    ),
    (P.SCHEDULED, Rule.WINDOW_MISSED): lambda: _facts(
        P.SCHEDULED, _spec(schedule={"notAfter": "2026-11-25T11:00:00Z"})
    ),
    (P.IN_PROGRESS, Rule.PLAN_APPLIED): lambda: _facts(
        P.IN_PROGRESS, _spec(plan=PLAN), plan=PlanResult(1)
    ),
    (P.IN_PROGRESS, Rule.PERMIT_FINISHED): lambda: _facts(P.IN_PROGRESS, _spec(done=True)),
    (P.IN_PROGRESS, Rule.PLAN_FAILED): lambda: _facts(
        P.IN_PROGRESS,
        _spec(plan=PLAN),
        plan=PlanResult(0, "HTTP 422"),
        rollback=RollbackResult("applying the plan failed: HTTP 422", (), "upgrade-rollback"),
    ),
    (P.IN_PROGRESS, Rule.APPROVAL_VOIDED): lambda: _facts(
        P.IN_PROGRESS,
        _spec(plan=PLAN),
        approval=_approved(_spec(plan=PLAN, summary="as approved")),
        rollback=RollbackResult("the spec running is not the one approved", (), "u-rollback"),
    ),
    (P.VERIFYING, Rule.APPROVAL_VOIDED): lambda: _facts(
        P.VERIFYING,
        approval=_approved(_spec(summary="as approved")),
        rollback=RollbackResult("the spec running is not the one approved", (), "u-rollback"),
    ),
    (P.VERIFYING, Rule.POST_CHECKS_PASS): lambda: _facts(P.VERIFYING, post_checks=Verdict()),
    (P.VERIFYING, Rule.POST_CHECKS_FAILED): lambda: _facts(
        P.VERIFYING,
        post_checks=_failed("errors is 0.2"),
        rollback=RollbackResult("post-checks failed: errors is 0.2", (), "upgrade-rollback"),
    ),
    (P.VERIFYING, Rule.ROLLBACK_FAILED): lambda: _facts(
        P.VERIFYING,
        post_checks=_failed("errors is 0.2"),
        rollback=RollbackResult("post-checks failed", ("Deployment web: gone",), "x-rollback"),
    ),
}


def test_the_cases_cover_every_transition_of_the_table() -> None:
    table = {(phase, rule) for phase, rules in TRANSITIONS.items() for rule in rules}
    assert set(CASES) == table


@pytest.mark.parametrize(("source", "rule"), list(CASES), ids=str)
def test_each_transition_enters_the_phase_the_table_names(
    source: ChangePhase | None, rule: Rule
) -> None:
    move = transition(CASES[(source, rule)]())
    assert move.rule is rule
    assert move.phase is TRANSITIONS[source][rule]
    assert move.reason
    assert move.needs is None


def test_the_final_phases_have_no_way_out_and_nothing_happens_in_them() -> None:
    for phase in changes.FINAL:
        assert TRANSITIONS[phase] == {}
        assert transition(_facts(phase, _spec(cancelled=True))) == Move(done=True)


def test_a_rule_the_table_does_not_allow_from_a_phase_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        change_lifecycle.BY_PHASE,  # type: ignore[arg-type]
        P.IN_PROGRESS,
        lambda f: enter(Rule.MERGED, "approved while running?"),
    )
    with pytest.raises(TransitionError, match="merged does not leave phase InProgress"):
        transition(_facts(P.IN_PROGRESS))


def test_entering_a_final_phase_ends_the_tick() -> None:
    assert transition(CASES[(P.VERIFYING, Rule.POST_CHECKS_PASS)]()).done
    assert transition(CASES[(P.PENDING_APPROVAL, Rule.CANCELLED)]()).done
    assert not transition(CASES[(P.APPROVED, Rule.SCHEDULED)]()).done


# -- rules of any phase ------------------------------------------------------------------


def test_a_new_change_is_pending_approval() -> None:
    move = transition(_facts(None, _spec(type="emergency")))
    assert (move.phase, move.reason) == (P.PENDING_APPROVAL, "emergency change created")
    assert not move.done  # and it goes on in the same tick


def test_a_change_cancelled_before_it_started_is_cancelled() -> None:
    move = transition(_facts(P.SCHEDULED, _spec(cancelled=True), approval=_approved()))
    assert move.reason == "spec.cancelled was set before the change started"
    assert not move.warning


@pytest.mark.parametrize("phase", [P.IN_PROGRESS, P.VERIFYING])
def test_a_running_change_is_not_cancelled(phase: ChangePhase) -> None:
    move = transition(_facts(phase, _spec(cancelled=True, plan=PLAN)))
    assert move.rule is not Rule.CANCELLED
    assert Effect.ROLL_BACK not in move.effects


@pytest.mark.parametrize("phase", [P.IN_PROGRESS, P.VERIFYING])
def test_a_running_change_whose_spec_is_not_the_approved_one_applies_nothing_and_fails(
    phase: ChangePhase,
) -> None:
    widened = _spec(plan=[*PLAN, {**PLAN[0], "target": {**PLAN[0]["target"], "name": "db"}}])
    running = _facts(
        phase, widened, approval=_approved(_spec(plan=PLAN)), execution={"appliedSteps": 1}
    )
    move = transition(running)
    assert Effect.APPLY_PLAN not in move.effects
    assert move.effects == (Effect.ROLL_BACK, Effect.OPEN_INCIDENT)
    assert "the spec running is not the one approved" in move.why
    assert [(c.type, c.reason) for c in move.conditions] == [("Approved", "ApprovalVoided")]
    failed = transition(replace(running, rollback=RollbackResult(move.why, (), "upgrade-rb")))
    assert failed.phase is P.FAILED
    assert failed.warning
    assert failed.conditions[0].reason == "ApprovalVoided"
    assert "prior state restored; incident upgrade-rb opened" in failed.reason


def test_a_running_change_without_an_approval_on_record_applies_nothing() -> None:
    move = transition(_facts(P.IN_PROGRESS, _spec(plan=PLAN), approval={}))
    assert move.effects == (Effect.ROLL_BACK, Effect.OPEN_INCIDENT)


def test_an_edit_after_approval_voids_it_with_a_warning() -> None:
    move = transition(CASES[(P.SCHEDULED, Rule.APPROVAL_VOID)]())
    assert move.warning
    assert "the approval is void and the change is proposed again" in move.reason
    assert move.status == {"approval": None, "window": None}
    assert not move.done  # it is proposed again in the same tick


def test_steering_fields_do_not_void_an_approval() -> None:
    move = transition(_facts(P.APPROVED, _spec(done=True), approval=_approved()))
    assert move.rule is Rule.SCHEDULED


# -- approval ----------------------------------------------------------------------------


def test_an_emergency_change_approves_itself_for_review_afterwards() -> None:
    move = transition(CASES[(P.PENDING_APPROVAL, Rule.EMERGENCY)]())
    approval = move.status["approval"]
    assert approval["approver"] == "emergency change (post-implementation review required)"
    assert approval["approvedAt"] == "2026-11-25T12:00:00Z"
    assert move.status["reviewRequired"] is True
    assert [(c.type, c.status, c.reason) for c in move.conditions] == [
        ("Approved", TRUE, "Emergency")
    ]
    assert move.reason == "emergency change: starts now, reviewed afterwards"


def test_without_a_cmdb_only_emergency_changes_run() -> None:
    move = transition(replace(_facts(P.PENDING_APPROVAL), protected_branch=None))
    assert move.done
    assert move.phase is None
    assert move.conditions[0].reason == "NoCMDB"
    assert "OPSLEDGER_CMDB_URL" in move.conditions[0].message


def test_a_standard_change_reads_its_template_first() -> None:
    standard = _spec(type="standard", template="restart")
    assert transition(_facts(P.PENDING_APPROVAL, standard)).needs is Need.TEMPLATE


def test_a_standard_change_without_its_template_waits_and_says_where_it_belongs() -> None:
    standard = _spec(type="standard", template="restart")
    move = transition(
        _facts(P.PENDING_APPROVAL, standard, template=Template("standard-changes/restart.yaml"))
    )
    assert move.phase is None
    [condition] = move.conditions
    assert (condition.status, condition.reason) == (FALSE, "TemplateNotFound")
    assert condition.message == (
        "standard-change template standard-changes/restart.yaml is not on main; add it there, "
        "or make this a normal change"
    )


def test_a_standard_change_whose_plan_leaves_its_template_is_proposed_saying_why() -> None:
    standard = _spec(type="standard", template="restart", plan=PLAN)
    template = Template("standard-changes/restart.yaml", "t1", "Dana", "summary: R\n", ITEMS)
    move = transition(_facts(P.PENDING_APPROVAL, standard, template=template))
    assert move.rule is None
    assert move.effects == (Effect.PROPOSE, Effect.OPEN_PULL_REQUEST)
    facts = _facts(P.PENDING_APPROVAL, standard, template=template)
    note = change_approval.proposal_note(facts)
    assert note.startswith("not pre-approved: it leaves standard-change template restart (")
    assert "the change has a plan; the template allows none" in note
    condition = change_approval.awaiting_approval("b", None, "main", note)
    assert condition.reason == "OutsideTemplate"


def test_a_standard_change_is_pre_approved_by_its_template() -> None:
    move = transition(CASES[(P.PENDING_APPROVAL, Rule.PRE_APPROVED)]())
    assert move.status["approval"] == {
        "approver": "standard-change template restart (by Dana <dana@x>)",
        "commit": "t1",
        "approvedAt": "2026-11-25T12:00:00Z",
        "specHash": changes.spec_hash(_spec(type="standard", template="restart")),
    }
    assert move.reason == "pre-approved by standard-change template restart"


def test_a_normal_change_is_proposed_with_its_pull_request() -> None:
    move = transition(_facts(P.PENDING_APPROVAL))
    assert move.effects == (Effect.PROPOSE, Effect.OPEN_PULL_REQUEST)
    assert move.done  # read back from the next tick


def test_a_proposal_waits_for_the_service_level_and_the_target_items() -> None:
    no_level = transition(replace(_facts(P.PENDING_APPROVAL), level=None))
    assert no_level.effects == ()
    assert no_level.conditions[0].reason == "ServiceLevelNotFound"
    assert "not proposed yet" in no_level.conditions[0].message
    unknown = transition(_facts(P.PENDING_APPROVAL, unknown_targets=("web", "db")))
    assert unknown.conditions[0].reason == "TargetsNotFound"
    assert "no ConfigurationItem web, db in ns" in unknown.conditions[0].message


def test_a_stale_proposal_is_proposed_again() -> None:
    stale = _proposed(_spec(summary="before the edit"))
    move = transition(_facts(P.PENDING_APPROVAL, approval=stale))
    assert Effect.PROPOSE in move.effects


def test_a_proposal_without_its_pull_request_gets_one_where_a_forge_is_configured() -> None:
    move = transition(_facts(P.PENDING_APPROVAL, forge=True, approval=_proposed()))
    assert move.effects == (Effect.OPEN_PULL_REQUEST,)
    assert transition(_facts(P.PENDING_APPROVAL, approval=_proposed())).needs is Need.APPROVAL


def test_a_merged_proposal_approves_the_change_naming_approver_and_reviewers() -> None:
    move = transition(
        _facts(
            P.PENDING_APPROVAL,
            forge=True,
            approval=_proposed(pullRequestNumber=7),
            read_back=ReadBack(
                _merge(),
                PR(open=False, merged=True, approvers=("bob",)),
                approvals=(Identity("git", "Alice <alice@x>"),),
            ),
        )
    )
    assert move.phase is P.APPROVED
    approval = move.status["approval"]
    assert approval["commit"] == "abcdef1234567890"
    assert approval["approver"] == "Alice <alice@x>"
    assert approval["approvedAt"] == "2026-11-25T11:00:00Z"
    assert approval["reviewers"] == ["bob"]
    assert approval["proposalCommit"] == "p1"  # kept
    assert (
        move.reason == "approved by Alice <alice@x>: changes/test/ns/upgrade merged in abcdef123456"
    )
    assert move.conditions[0].message == "approved by Alice <alice@x>"
    assert not move.done  # scheduled in the same tick


def test_without_a_recorded_requester_a_strict_mode_approves_nothing() -> None:
    back = ReadBack(_merge(), approvals=(Identity("forge", "alice"),), strict=True)
    move = transition(_facts(P.PENDING_APPROVAL, approval=_proposed(), read_back=back))
    assert move.phase is None
    assert move.conditions[0].reason == "RequesterUnknown"


def test_who_asked_through_a_service_request_cannot_approve_the_change_made_for_them() -> None:
    """OpsLedger made the change (its requester), for Jane's request (onBehalfOf): Jane's own
    approving review counts for nothing; Alice's approves it."""
    spec = _spec(
        requester={"username": "system:serviceaccount:opsledger:opsledger"},
        onBehalfOf={"username": "jane"},
    )

    def judged(approver: str) -> Any:
        back = ReadBack(_merge(), approvals=(Identity("forge", approver),), strict=True)
        return transition(
            _facts(P.PENDING_APPROVAL, spec, approval=_proposed(spec), read_back=back)
        )

    own = judged("jane")
    assert own.phase is None
    assert own.conditions[0].reason == "ApprovalsMissing"
    assert "jane is the requester" in own.conditions[0].message
    assert judged("alice").phase is P.APPROVED


def test_a_merge_the_forge_has_not_caught_up_with_decides_nothing_yet() -> None:
    back = ReadBack(_merge(), PR(open=True), settled=False)
    move = transition(_facts(P.PENDING_APPROVAL, approval=_proposed(), read_back=back))
    assert move == Move(done=True)  # neither approved nor "approvals missing": asked again


def test_a_closed_pull_request_or_a_deleted_branch_rejects_it_with_a_warning() -> None:
    closed = transition(CASES[(P.PENDING_APPROVAL, Rule.PULL_REQUEST_CLOSED)]())
    assert closed.warning
    assert closed.reason == "pull request #7 (https://forge/pulls/7) was closed without merging"
    assert closed.conditions[0].reason == "PullRequestClosed"
    deleted = transition(CASES[(P.PENDING_APPROVAL, Rule.PROPOSAL_DELETED)]())
    assert deleted.warning
    assert "changes/test/ns/upgrade was deleted without being merged" in deleted.reason
    assert deleted.conditions[0].reason == "ProposalDeleted"


def test_an_open_proposal_asks_whether_its_branch_is_there_then_waits() -> None:
    open_ = _facts(P.PENDING_APPROVAL, approval=_proposed(), read_back=ReadBack(None))
    assert transition(open_).needs is Need.BRANCH
    waiting = transition(replace(open_, read_back=ReadBack(None, branch_exists=True)))
    assert waiting == Move(done=True)
    # Squash-merged on the forge: the branch is gone before the merge is fetched. That is no
    # deletion (a full run once rejected a change so).
    merged = ReadBack(None, PR(open=False, merged=True), branch_exists=False)
    assert transition(replace(open_, read_back=merged)) == Move(done=True)


# -- starting ----------------------------------------------------------------------------


def _scheduled(**extra: Any) -> Facts:
    return _facts(P.SCHEDULED, approval=_approved(), **extra)


def test_an_approval_on_record_that_the_cmdb_does_not_hold_is_voided_before_starting() -> None:
    """A forged status (approvedAt and a matching hash, written past a webhook set to Ignore)
    is read back against the CMDB right before the change would start."""
    ready_to_start = {"pre_checks": Verdict(), "targets": {}}
    forged = _facts(
        P.SCHEDULED,
        approval={**_approved(), "commit": "f0f0f0f0"},
        **ready_to_start,
    )
    move = transition(forged)
    assert move.rule is Rule.APPROVAL_VOID
    assert "not what the CMDB holds" in move.reason
    unmerged = transition(replace(forged, approval=_approved(), read_back=ReadBack(None)))
    assert unmerged.rule is Rule.APPROVAL_VOID
    assert transition(replace(forged, approval=_approved())).rule is not Rule.APPROVAL_VOID
    assert transition(replace(forged, read_back=None, approval=_approved())).needs is Need.APPROVAL


def test_a_forged_in_progress_normal_change_applies_no_step() -> None:
    """Phase InProgress and an approval with the right hash, written into status while the
    operator (and its webhook) was down: before the first step the merge is read back."""
    forged = _facts(
        P.IN_PROGRESS,
        _spec(plan=PLAN),
        approval={**_approved(_spec(plan=PLAN)), "commit": "f0f0f0f0"},
        execution={"appliedSteps": 0, "prior": []},
    )
    assert transition(replace(forged, read_back=None)).needs is Need.APPROVAL
    move = transition(forged)
    assert Effect.APPLY_PLAN not in move.effects
    assert move.effects == (Effect.ROLL_BACK, Effect.OPEN_INCIDENT)
    assert "not what the CMDB holds" in move.why
    failed = transition(replace(forged, rollback=RollbackResult(move.why, (), "x-rollback")))
    assert failed.phase is P.FAILED
    assert failed.conditions[0].reason == "ApprovalVoided"
    genuine = replace(forged, approval=_approved(_spec(plan=PLAN)))
    assert transition(genuine).effects == (Effect.APPLY_PLAN,)


def test_a_scheduled_change_measures_health_then_captures_its_prior_state() -> None:
    assert transition(_scheduled()).needs is Need.PRE_CHECKS
    assert transition(_scheduled(pre_checks=Verdict())).needs is Need.TARGETS
    assert transition(_scheduled(pre_checks=Verdict(), targets={})).needs is Need.PRIOR


def test_a_started_change_records_when_and_the_prior_state_and_ends_the_tick() -> None:
    move = transition(CASES[(P.SCHEDULED, Rule.STARTED)]())
    assert move.done  # the plan runs from the next tick
    assert move.at == T0 + timedelta(seconds=2)
    assert move.status["execution"] == {
        "startedAt": "2026-11-25T12:00:02Z",
        "appliedSteps": 0,
        "prior": [],
    }
    assert move.reason.startswith("started in the window ending ")
    assert [c.type for c in move.conditions] == ["WindowOpen", "HealthGate"]


def test_an_emergency_change_starts_without_looking_at_its_items() -> None:
    spec = _spec(type="emergency")
    emergency = _facts(P.SCHEDULED, spec, approval=_approved(spec))
    assert transition(replace(emergency, pre_checks=Verdict())).needs is Need.PRIOR
    started = transition(
        replace(emergency, pre_checks=Verdict(), prior=[], started_at=T0, blocked_by=("x",))
    )
    assert started.reason == "started now: an emergency change skips the windows"


def test_a_held_change_waits_and_writes_the_window_it_waits_for() -> None:
    level = {
        "spec": {
            "service": "shop",
            "maintenanceWindows": [{"schedule": "0 22 * * *", "duration": "2h"}],
        }
    }
    move = transition(replace(_scheduled(), level=level))
    assert move.done
    assert move.phase is None
    assert move.status["window"] == {"start": "2026-11-25T22:00:00Z", "end": "2026-11-26T00:00:00Z"}
    assert [(c.type, c.reason) for c in move.conditions] == [("WindowOpen", "OutsideWindow")]


def test_without_a_service_level_a_scheduled_change_waits_and_keeps_its_window() -> None:
    move = transition(replace(_scheduled(), level=None))
    assert "window" not in move.status
    assert move.conditions[0].reason == "ServiceLevelNotFound"


def test_a_missed_window_fails_the_change_with_a_warning() -> None:
    move = transition(CASES[(P.SCHEDULED, Rule.WINDOW_MISSED)]())
    assert move.warning
    assert "schedule.notAfter (2026-11-25T11:00:00Z) has passed" in move.reason
    assert move.status["window"] is None


def test_unhealthy_pre_checks_hold_a_scheduled_change() -> None:
    move = transition(_scheduled(pre_checks=_failed("errors is 0.2"), targets={}))
    assert move.phase is None
    assert move.conditions[-1].message == "pre-checks fail: errors is 0.2"


# -- carrying out ------------------------------------------------------------------------


def test_an_in_progress_plan_is_applied_then_verified_after_the_soak() -> None:
    running = _facts(P.IN_PROGRESS, _spec(plan=PLAN, soak="30s"), execution={"appliedSteps": 0})
    apply = transition(running)
    assert apply.effects == (Effect.APPLY_PLAN,)
    assert not apply.done
    move = transition(replace(running, plan=PlanResult(1)))
    assert move.phase is P.VERIFYING
    assert move.status["execution"] == {"appliedSteps": 1, "verifyAfter": "2026-11-25T12:00:30Z"}
    assert move.reason == "plan applied; post-checks after a soak of 30s"


def test_a_plan_whose_window_closed_waits_for_the_next_and_says_so() -> None:
    running = _facts(P.IN_PROGRESS, _spec(plan=PLAN), execution={"appliedSteps": 0})
    why = "1 of 2 plan steps applied; the next starts only inside a window: in a blackout until X"
    move = transition(replace(running, plan=PlanResult(1, waiting=why)))
    assert move.phase is None  # still InProgress: what was started is not undone
    assert move.done
    assert move.status["execution"] == {"appliedSteps": 1}
    [closed] = move.conditions
    assert (closed.type, closed.status, closed.reason) == ("WindowOpen", "False", "WindowClosed")
    assert closed.message == why


def test_a_refused_plan_step_rolls_back_and_opens_an_incident() -> None:
    running = _facts(P.IN_PROGRESS, _spec(plan=PLAN), execution={"appliedSteps": 0, "prior": []})
    move = transition(replace(running, plan=PlanResult(0, "HTTP 422: invalid")))
    assert move.effects == (Effect.ROLL_BACK, Effect.OPEN_INCIDENT)
    assert move.why == "applying the plan failed: HTTP 422: invalid"
    assert move.status["execution"]["appliedSteps"] == 0
    failed = transition(CASES[(P.IN_PROGRESS, Rule.PLAN_FAILED)]())
    assert failed.phase is P.FAILED
    assert failed.reason == (
        "applying the plan failed: HTTP 422; prior state restored; incident upgrade-rollback opened"
    )


def test_a_permit_runs_until_done_or_its_window_ends() -> None:
    permit = _facts(P.IN_PROGRESS, window={"end": "2026-11-25T13:00:00Z"})
    assert transition(permit) == Move(done=True)
    ended = transition(replace(permit, window={"end": "2026-11-25T12:00:00Z"}))
    assert ended.rule is Rule.PERMIT_FINISHED
    assert ended.reason == "permit finished; post-checks now (no soak)"
    assert ended.status["execution"]["verifyAfter"] == "2026-11-25T12:00:00Z"


def test_soak_timing() -> None:
    assert change_lifecycle.verify_after(_spec(soak="2m"), T0) == T0 + timedelta(minutes=2)
    assert change_lifecycle.verify_after(_spec(), T0) == T0


# -- verifying ---------------------------------------------------------------------------


def test_a_soaking_change_waits_then_measures_its_post_checks() -> None:
    soaking = _facts(P.VERIFYING, execution={"verifyAfter": "2026-11-25T12:00:01Z"})
    assert transition(soaking) == Move(done=True)
    due = replace(soaking, execution={"verifyAfter": "2026-11-25T12:00:00Z"})
    assert transition(due).needs is Need.POST_CHECKS


def test_unknown_post_checks_keep_a_change_verifying() -> None:
    unknown = Verdict()
    unknown.unknown("no data")
    move = transition(_facts(P.VERIFYING, post_checks=unknown))
    assert move.phase is None
    assert move.effects == ()
    assert (move.conditions[0].status, move.conditions[0].reason) == (UNKNOWN, "HealthUnknown")


def test_failing_post_checks_roll_back_and_open_an_incident() -> None:
    move = transition(_facts(P.VERIFYING, post_checks=_failed("errors is 0.2, must be below 0.01")))
    assert move.effects == (Effect.ROLL_BACK, Effect.OPEN_INCIDENT)
    assert move.why == "post-checks failed: errors is 0.2, must be below 0.01"
    assert move.conditions[0].message == "post-checks fail: errors is 0.2, must be below 0.01"
    rolled = transition(CASES[(P.VERIFYING, Rule.POST_CHECKS_FAILED)]())
    assert rolled.warning
    assert rolled.status["incident"] == "upgrade-rollback"
    assert rolled.status["execution"]["finishedAt"] == "2026-11-25T12:00:00Z"
    assert rolled.reason == (
        "post-checks failed: errors is 0.2; prior state restored; incident upgrade-rollback opened"
    )


def test_a_rollback_that_could_not_restore_everything_fails_the_change() -> None:
    move = transition(CASES[(P.VERIFYING, Rule.ROLLBACK_FAILED)]())
    assert move.phase is P.FAILED
    assert "restore failed: Deployment web: gone; incident x-rollback opened" in move.reason


def test_passing_post_checks_complete_the_change() -> None:
    move = transition(_facts(P.VERIFYING, post_checks=Verdict(), execution={"appliedSteps": 1}))
    assert move.status["execution"] == {"appliedSteps": 1, "finishedAt": "2026-11-25T12:00:00Z"}
    assert move.conditions[0].message == "post-checks: all health checks pass"
    assert move.reason == "post-checks pass"


# -- Ready -------------------------------------------------------------------------------


def test_ready_follows_the_phase_and_says_the_last_reason() -> None:
    transitions = [{"phase": "PendingApproval", "reason": "normal change created"}]
    assert ready(P.PENDING_APPROVAL, transitions) == (
        "Ready",
        TRUE,
        "PendingApproval",
        "normal change created",
    )
    for phase in (P.REJECTED, P.FAILED, P.ROLLED_BACK):
        assert ready(phase, transitions).status == FALSE
    for phase in (P.COMPLETED, P.CANCELLED, P.IN_PROGRESS):
        assert ready(phase, transitions).status == TRUE
    assert ready(None, []) == ("Ready", TRUE, "PendingApproval", "accepted")
