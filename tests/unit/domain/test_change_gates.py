"""The start gates of a Change, one by one and as a chain, at a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsledger.domain import change_gates, changes
from opsledger.domain.change_facts import Need
from opsledger.domain.change_gates import (
    GO,
    HEALTH_GATE,
    START_GATES,
    WINDOW_OPEN,
    Gate,
    Go,
    Refusal,
    StartFacts,
    evaluate,
)
from opsledger.domain.changes import Verdict
from opsledger.domain.outcome import ConditionUpdate
from opsledger.models.change import ChangeSpec
from opsledger.models.common import ConditionStatus
from opsledger.models.servicelevel import ServiceLevelSpec

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)  # a Wednesday, noon
TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


def _spec(**extra: Any) -> ChangeSpec:
    return ChangeSpec.model_validate(
        {"type": "normal", "summary": "Upgrade web", "service": "shop", "targets": ["web"], **extra}
    )


def _level(**extra: Any) -> ServiceLevelSpec:
    return ServiceLevelSpec.model_validate({"service": "shop", **extra})


NIGHTLY = {"maintenanceWindows": [{"schedule": "0 22 * * *", "duration": "2h"}]}
FROZEN = {
    "freezes": [
        {"start": "2026-11-25T00:00:00Z", "end": "2026-11-26T00:00:00Z", "reason": "Black Friday"}
    ]
}
BUDGETED = {
    "errorBudgetPolicy": {"blockNormalChanges": True},
    "objectives": [
        {
            "name": "availability",
            "objective": 99.9,
            "window": "30d",
            "sli": {"events": {"errorQuery": "e", "totalQuery": "t"}},
        }
    ],
}


def _facts(
    spec: ChangeSpec | None = None,
    level: ServiceLevelSpec | None = None,
    *,
    now: datetime = T0,
    no_level: bool = False,
    **extra: Any,
) -> StartFacts:
    spec = spec or _spec()
    sl = None if no_level else (level or _level())
    decision = changes.change_window(now, spec, sl) if sl is not None else None
    return StartFacts(now=now, spec=spec, level=sl, level_status={}, decision=decision, **extra)


def _condition_status(status: str, message: str) -> dict[str, Any]:
    return {
        "type": "Healthy",
        "status": status,
        "reason": "PrometheusUnavailable" if status == "Unknown" else "Down",
        "message": message,
        "lastTransitionTime": "2026-11-01T00:00:00Z",
    }


def _budget_status(measured: str, exhausted: str) -> dict[str, Any]:
    at = "2026-11-25T11:00:00Z"
    return {
        "conditions": [
            {"type": t, "status": v, "reason": "R", "message": m, "lastTransitionTime": at}
            for t, v, m in (
                ("Measured", measured, "no data yet"),
                ("BudgetExhausted", exhausted, "0.0% left"),
            )
        ]
    }


# -- service_level -----------------------------------------------------------------------


def test_service_level_lets_a_change_with_its_service_level_go() -> None:
    assert change_gates.service_level(_facts()) == GO


def test_service_level_refuses_without_one_and_says_how_to_fix_it() -> None:
    answer = change_gates.service_level(_facts(no_level=True))
    assert isinstance(answer, Refusal)
    assert answer.reason == "ServiceLevelNotFound"
    assert "spec.service='shop'" in answer.message
    assert "create it or fix spec.service" in answer.message
    assert not answer.final


# -- deadline ----------------------------------------------------------------------------


def test_deadline_lets_a_change_with_time_left_go() -> None:
    later = _spec(schedule={"notAfter": "2026-11-30T00:00:00Z"})
    assert change_gates.deadline(_facts(later, _level(**NIGHTLY))) == GO  # waits, not late


def test_deadline_fails_a_change_whose_not_after_has_passed() -> None:
    late = _spec(schedule={"notAfter": "2026-11-25T11:00:00Z"})
    answer = change_gates.deadline(_facts(late))
    assert isinstance(answer, Refusal)
    assert answer.final
    assert answer.reason == "OutsideWindow"
    assert "schedule.notAfter (2026-11-25T11:00:00Z) has passed" in answer.message


def test_deadline_fails_a_change_with_no_window_before_not_after() -> None:
    spec = _spec(schedule={"notAfter": "2026-11-25T20:00:00Z"})  # before tonight's window
    answer = change_gates.deadline(_facts(spec, _level(**NIGHTLY)))
    assert isinstance(answer, Refusal)
    assert answer.final
    assert "no eligible window" in answer.message


# -- freeze ------------------------------------------------------------------------------


def test_freeze_lets_a_change_go_outside_every_freeze() -> None:
    assert change_gates.freeze(_facts()) == GO
    assert change_gates.freeze(_facts(now=T0 + timedelta(days=2), level=_level(**FROZEN))) == GO


def test_freeze_holds_a_change_and_names_the_freeze() -> None:
    answer = change_gates.freeze(_facts(level=_level(**FROZEN)))
    assert isinstance(answer, Refusal)
    assert answer.reason == "OutsideWindow"
    assert answer.message.startswith("frozen until 2026-11-26T00:00:00Z: Black Friday")
    assert not answer.final


def test_freeze_does_not_hold_an_emergency_change() -> None:
    assert change_gates.freeze(_facts(_spec(type="emergency"), _level(**FROZEN))) == GO


# -- schedule ----------------------------------------------------------------------------


def test_schedule_holds_a_change_until_not_before() -> None:
    spec = _spec(schedule={"notBefore": "2026-11-25T13:00:00Z"})
    answer = change_gates.schedule(_facts(spec))
    assert isinstance(answer, Refusal)
    assert answer.reason == "OutsideWindow"
    assert answer.message.startswith("waiting for schedule.notBefore (2026-11-25T13:00:00Z)")


def test_schedule_lets_it_go_once_not_before_has_come() -> None:
    spec = _spec(schedule={"notBefore": "2026-11-25T11:00:00Z"})
    assert change_gates.schedule(_facts(spec)) == GO
    assert change_gates.schedule(_facts()) == GO  # no schedule at all


# -- window ------------------------------------------------------------------------------


def test_window_holds_a_change_outside_the_maintenance_windows() -> None:
    answer = change_gates.window(_facts(level=_level(**NIGHTLY)))
    assert isinstance(answer, Refusal)
    assert answer.reason == "OutsideWindow"
    assert answer.message == (
        "outside the service's maintenance windows; next eligible window "
        "2026-11-25T22:00:00Z to 2026-11-26T00:00:00Z"
    )


def test_window_lets_it_go_inside_one_and_says_until_when() -> None:
    answer = change_gates.window(_facts(level=_level(**NIGHTLY), now=T0 + timedelta(hours=11)))
    assert answer == Go(
        ConditionUpdate(
            WINDOW_OPEN,
            TRUE,
            "InsideWindow",
            "inside a maintenance window until 2026-11-26T00:00:00Z",
        )
    )


def test_window_lets_an_emergency_change_go_at_any_time() -> None:
    answer = change_gates.window(_facts(_spec(type="emergency"), _level(**NIGHTLY)))
    assert isinstance(answer, Go)
    assert answer.condition is not None
    assert "maintenance windows, blackouts, freezes and calendars do not apply" in (
        answer.condition.message
    )


# -- conflicts ---------------------------------------------------------------------------


def test_conflicts_hold_a_change_while_another_one_runs_on_its_items() -> None:
    answer = change_gates.conflicts(_facts(blocked_by=("hotfix",)))
    assert isinstance(answer, Refusal)
    assert answer.reason == "Conflict"
    assert "hotfix" in answer.message


def test_conflicts_let_it_go_without_one_and_an_emergency_change_anyway() -> None:
    assert change_gates.conflicts(_facts()) == GO
    assert change_gates.conflicts(_facts(_spec(type="emergency"), blocked_by=("x",))) == GO


# -- pre_checks --------------------------------------------------------------------------


def test_pre_checks_need_measuring_first() -> None:
    assert change_gates.pre_checks(_facts()) is Need.PRE_CHECKS


def test_pre_checks_let_a_healthy_change_go() -> None:
    assert change_gates.pre_checks(_facts(pre_checks=Verdict())) == GO


def test_pre_checks_hold_a_change_when_a_check_fails() -> None:
    verdict = Verdict()
    verdict.fail("errors is 0.2, must be below 0.01")
    answer = change_gates.pre_checks(_facts(pre_checks=verdict))
    assert answer == Refusal("Unhealthy", "errors is 0.2, must be below 0.01")


def test_pre_checks_hold_a_change_while_health_is_unknown() -> None:
    verdict = Verdict()
    verdict.unknown("Prometheus at http://x did not answer")
    answer = change_gates.pre_checks(_facts(pre_checks=verdict))
    assert answer == Refusal("HealthUnknown", "Prometheus at http://x did not answer", unknown=True)


# -- budget ------------------------------------------------------------------------------


def _budget(status: dict[str, Any], spec: ChangeSpec | None = None, **level: Any) -> Any:
    return change_gates.budget(
        replace(_facts(spec, _level(**{**BUDGETED, **level})), level_status=status)
    )


def test_budget_lets_a_normal_change_go_with_budget_left() -> None:
    assert _budget(_budget_status("True", "False")) == GO


def test_budget_holds_a_normal_change_when_it_is_exhausted() -> None:
    answer = _budget(_budget_status("True", "True"))
    assert answer == Refusal("Unhealthy", "error budget exhausted: 0.0% left")


def test_budget_holds_a_normal_change_while_it_is_not_measured() -> None:
    answer = _budget(_budget_status("False", "False"))
    assert isinstance(answer, Refusal)
    assert answer.unknown
    assert "not measured yet (no data yet)" in answer.message


def test_budget_does_not_hold_other_changes_or_when_the_policy_says_so() -> None:
    exhausted = _budget_status("True", "True")
    assert _budget(exhausted, _spec(type="emergency")) == GO
    assert _budget(exhausted, _spec(type="standard", template="t")) == GO
    assert _budget(exhausted, errorBudgetPolicy={"blockNormalChanges": False}) == GO


# -- targets_health ----------------------------------------------------------------------


def test_targets_health_needs_the_items_looked_up_first() -> None:
    assert change_gates.targets_health(_facts()) is Need.TARGETS


def test_targets_health_lets_a_change_on_healthy_or_unmeasured_items_go() -> None:
    assert change_gates.targets_health(_facts(targets={"web": {"health": "Healthy"}})) == GO
    assert change_gates.targets_health(_facts(targets={"web": None})) == GO


def test_targets_health_holds_a_change_on_a_down_item() -> None:
    status = {"health": "Down", "conditions": [_condition_status("False", "0 of 2 ready")]}
    answer = change_gates.targets_health(_facts(targets={"web": status}))
    assert answer == Refusal("Unhealthy", "target web is Down: 0 of 2 ready")


def test_targets_health_holds_it_while_an_item_s_health_is_unknown() -> None:
    status = {"health": "Unknown", "conditions": [_condition_status("Unknown", "no answer")]}
    answer = change_gates.targets_health(_facts(targets={"web": status}))
    assert isinstance(answer, Refusal)
    assert answer.unknown
    assert "health of target web is unknown: no answer" in answer.message


def test_targets_health_does_not_hold_or_look_up_an_emergency_change() -> None:
    assert change_gates.targets_health(_facts(_spec(type="emergency"))) == GO


# -- the chain ---------------------------------------------------------------------------


def test_the_chain_is_data_in_the_order_the_gates_are_asked() -> None:
    assert [g.name for g in START_GATES] == [
        "service_level",
        "deadline",
        "freeze",
        "schedule",
        "window",
        "conflicts",
        "pre_checks",
        "budget",
        "targets_health",
    ]
    assert [g.name for g in START_GATES if g.joint] == ["pre_checks", "budget", "targets_health"]


def test_all_gates_go_report_the_window_and_health() -> None:
    gated = evaluate(_facts(pre_checks=Verdict(), targets={}))
    assert gated.go
    assert gated.conditions == (
        ConditionUpdate(
            WINDOW_OPEN,
            TRUE,
            "InsideWindow",
            "the service has no maintenance windows: changes may start outside a freeze, "
            "blackout or calendar event",
        ),
        ConditionUpdate(HEALTH_GATE, TRUE, "Healthy", "pre-checks: all health checks pass"),
    )


def test_the_first_refusal_holds_and_later_gates_are_not_asked() -> None:
    gated = evaluate(_facts(level=_level(**FROZEN)))  # pre-checks not measured: not needed
    assert gated.held_by == ("freeze",)
    assert gated.needs is None
    assert [(c.type, c.status, c.reason) for c in gated.conditions] == [
        (WINDOW_OPEN, FALSE, "OutsideWindow")
    ]


def test_a_final_refusal_says_the_change_can_never_start() -> None:
    late = _spec(schedule={"notAfter": "2026-11-25T11:00:00Z"})
    gated = evaluate(_facts(late))
    assert gated.final
    assert gated.held_by == ("deadline",)
    assert "has passed" in gated.reason


def test_a_conflict_holds_quietly_its_own_condition_says_why() -> None:
    gated = evaluate(_facts(blocked_by=("hotfix",)))
    assert gated.held_by == ("conflicts",)
    assert [c.type for c in gated.conditions] == [WINDOW_OPEN]  # open, but held


def test_the_chain_asks_for_what_a_gate_needs_in_turn() -> None:
    assert evaluate(_facts()).needs is Need.PRE_CHECKS
    assert evaluate(_facts(pre_checks=Verdict())).needs is Need.TARGETS


def test_the_health_gates_report_every_reason_in_one_condition() -> None:
    failing = Verdict()
    failing.fail("errors is 0.2, must be below 0.01")
    down = {"health": "Down", "conditions": [_condition_status("False", "0 of 2 ready")]}
    gated = evaluate(
        replace(
            _facts(level=_level(**BUDGETED), pre_checks=failing, targets={"web": down}),
            level_status=_budget_status("True", "True"),
        )
    )
    assert gated.held_by == ("pre_checks", "budget", "targets_health")
    assert gated.conditions[-1] == ConditionUpdate(
        HEALTH_GATE,
        FALSE,
        "Unhealthy",
        "pre-checks fail: errors is 0.2, must be below 0.01; error budget exhausted: 0.0% left; "
        "target web is Down: 0 of 2 ready",
    )


def test_unknown_health_outranks_a_failure_in_the_joint_condition() -> None:
    unknown = Verdict()
    unknown.unknown("Prometheus did not answer")
    down = {"health": "Down", "conditions": [_condition_status("False", "0 of 2 ready")]}
    gated = evaluate(_facts(pre_checks=unknown, targets={"web": down}))
    last = gated.conditions[-1]
    assert (last.status, last.reason) == (UNKNOWN, "HealthUnknown")
    assert last.message == (
        "pre-checks: health is unknown, so the change waits: Prometheus did not answer; "
        "target web is Down: 0 of 2 ready"
    )


def test_a_new_rule_is_one_function_and_one_entry() -> None:
    def fridays(facts: StartFacts) -> Refusal | Go:
        return (
            Refusal("ReadOnlyFriday", "no changes on Fridays") if facts.now.weekday() == 4 else GO
        )

    chain = (*START_GATES[:5], Gate("fridays", fridays, WINDOW_OPEN), *START_GATES[5:])
    friday = T0 + timedelta(days=2)
    gated = evaluate(_facts(now=friday), chain)
    assert gated.held_by == ("fridays",)
    assert evaluate(_facts(pre_checks=Verdict(), targets={}), chain).go


@pytest.mark.parametrize("gate", START_GATES, ids=lambda g: g.name)
def test_every_gate_lets_a_plain_change_go(gate: Gate) -> None:
    assert isinstance(gate.policy(_facts(pre_checks=Verdict(), targets={})), Go)
