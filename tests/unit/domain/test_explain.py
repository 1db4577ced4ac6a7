"""`kubectl itsm explain` and `status`: read off the objects' own status."""

from __future__ import annotations

from opsledger.domain.explain import explain, services


def _condition(kind: str, status: str, reason: str, message: str) -> dict:
    return {"type": kind, "status": status, "reason": reason, "message": message}


CHANGE = {
    "metadata": {"namespace": "shop", "name": "resize"},
    "spec": {"type": "normal", "service": "shop"},
    "status": {
        "phase": "Scheduled",
        "transitions": [{"phase": "Scheduled", "at": "2026-12-02T10:00:00Z"}],
        "window": {"start": "2026-12-06T03:00:00Z", "end": "2026-12-06T04:00:00Z"},
        "conditions": [
            _condition("Approved", "True", "Merged", "approved by Alice"),
            _condition("WindowOpen", "False", "OutsideWindow", "next window Sunday 03:00"),
            _condition("Conflict", "False", "NoConflict", "no overlapping change"),
        ],
    },
}
LEVEL = {
    "metadata": {"namespace": "shop", "name": "shop"},
    "spec": {"service": "shop", "objectives": [{"name": "availability"}]},
    "status": {
        "objectives": [{"name": "availability", "sli": 99.5, "errorBudgetRemaining": -0.2}],
        "conditions": [
            _condition("BudgetExhausted", "True", "BudgetExhausted", "error budget below 0")
        ],
    },
}


def test_each_gate_says_its_verdict_and_the_operators_words() -> None:
    lines = {line.gate: line for line in explain(CHANGE, LEVEL)}
    assert lines["phase"].verdict == "waiting"
    assert lines["phase"].message == "Scheduled since 2026-12-02T10:00:00Z"
    assert lines["approval"].verdict == "ok"
    assert lines["window"].verdict == "blocked"
    assert "next window Sunday 03:00" in lines["window"].message
    assert lines["conflicts"].verdict == "ok"  # Conflict=False is fine
    assert lines["health"].verdict == "unknown"
    assert lines["budget"].verdict == "blocked"  # a normal change waits for budget
    assert lines["next window"].message == "2026-12-06T03:00:00Z to 2026-12-06T04:00:00Z"


def test_a_standard_change_is_not_held_by_the_budget_and_no_level_is_unknown() -> None:
    standard = {**CHANGE, "spec": {"type": "standard", "service": "shop"}}
    budget = {line.gate: line for line in explain(standard, LEVEL)}["budget"]
    assert budget.verdict == "ok"
    assert "does not hold" in budget.message
    assert {line.gate: line for line in explain(CHANGE, None)}["budget"].verdict == "unknown"


def test_status_counts_open_incidents_by_priority_and_running_changes() -> None:
    incidents = [
        {
            "metadata": {"namespace": "shop"},
            "spec": {"service": "shop", "state": state},
            "status": {"priority": priority},
        }
        for priority, state in (("P1", "New"), ("P1", "Acknowledged"), ("P3", "Resolved"))
    ]
    running = {**CHANGE, "status": {"phase": "InProgress"}}
    [row] = services([LEVEL], incidents, [running, CHANGE])
    assert row.open_incidents == {"P1": 2}
    assert row.changes_running == ["resize"]
    assert row.objectives == [("availability", 99.5, -0.2)]
