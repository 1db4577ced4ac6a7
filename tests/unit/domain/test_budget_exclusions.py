"""Which planned work is left out of the error budget, and the PromQL that leaves it out.

The numbers the masked queries give are checked against the real Prometheus in
tests/integration/test_slo_evaluate.py and, for the generated rules, with `promtool test rules`
in tests/integration/test_slo_rules.py; these are the rules of what counts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsledger.domain.budget_exclusions import (
    COMPLETED,
    IN_PROGRESS,
    MAX_EXCLUSIONS,
    Exclusion,
    ObservedChange,
    exclusion_message,
    intervals,
    masked_ratio_expression,
    merge,
    observe,
    touches,
)
from opsledger.domain.slo import batched_query
from opsledger.models.change import ChangeSpec

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MONTH = timedelta(days=30)
OBJECTIVES = ["availability", "latency"]


def _seen(name: str, phase: str, *, started: int | None = 0, finished: int | None = None,
          objectives: tuple[str, ...] = ("availability",)) -> ObservedChange:  # fmt: skip
    return ObservedChange(
        name,
        objectives,
        phase,
        T0 + started * HOUR if started is not None else None,
        T0 + finished * HOUR if finished is not None else None,
    )


def _look(previous: list[Exclusion], *changes: ObservedChange, hours: int = 3) -> list[Exclusion]:
    return merge(previous, changes, OBJECTIVES, T0 + hours * HOUR, MONTH)


def test_a_change_seen_running_is_left_out_provisionally_then_for_good_once_it_completes() -> None:
    running = _look([], _seen("failover", "InProgress"))
    assert running == [Exclusion("failover", ("availability",), T0, None, IN_PROGRESS)]
    verifying = _look(running, _seen("failover", "Verifying"))
    assert verifying == running
    done = _look(verifying, _seen("failover", "Completed", finished=2))
    assert done == [Exclusion("failover", ("availability",), T0, T0 + 2 * HOUR, COMPLETED)]
    # The record outlives the Change object, until it leaves every objective's window.
    assert _look(done) == done
    assert _look(done, hours=2 + 30 * 24 + 1) == []


@pytest.mark.parametrize("phase", ["Failed", "RolledBack"])
def test_a_change_that_does_not_complete_leaves_nothing_out(phase: str) -> None:
    running = _look([], _seen("failover", "InProgress"))
    assert _look(running, _seen("failover", phase, finished=1)) == []


def test_a_change_deleted_before_it_completed_leaves_nothing_out() -> None:
    running = _look([], _seen("failover", "InProgress"))
    assert _look(running) == []


def test_a_status_saying_completed_that_the_operator_never_saw_running_leaves_nothing_out() -> None:
    """Bob writes status.phase Completed over a month of errors while the webhooks are down:
    the loop never saw the change run, so nothing of the month is left out."""
    forged = _seen("forged", "Completed", started=-24 * 29, finished=2)
    assert _look([], forged) == []


def test_only_the_service_levels_own_objectives_are_left_out() -> None:
    other = _seen("failover", "InProgress", objectives=("throughput", "availability"))
    [kept] = _look([], other)
    assert kept.objectives == ("availability",)
    assert _look([], _seen("x", "InProgress", objectives=("throughput",))) == []


def test_changes_that_have_not_started_leave_nothing_out() -> None:
    for phase in ("PendingApproval", "Approved", "Scheduled", "Cancelled", "Rejected"):
        assert _look([], _seen("later", phase, started=None)) == [], phase
    assert _look([], _seen("odd", "InProgress", started=None)) == []


def test_at_most_the_newest_exclusions_are_kept() -> None:
    previous = [
        Exclusion(f"c{i}", ("availability",), T0 - i * HOUR, T0 - i * HOUR, COMPLETED)
        for i in range(MAX_EXCLUSIONS + 10)
    ]
    kept = _look(previous)
    assert len(kept) == MAX_EXCLUSIONS
    assert kept[-1].change == "c0"
    assert "c59" not in {e.change for e in kept}


def test_overlapping_intervals_are_joined_per_objective() -> None:
    exclusions = [
        Exclusion("a", ("availability",), T0, T0 + 2 * HOUR, COMPLETED),
        Exclusion("b", ("availability", "latency"), T0 + HOUR, T0 + 3 * HOUR, COMPLETED),
        Exclusion("c", ("availability",), T0 + 5 * HOUR, None, IN_PROGRESS),
    ]
    t = T0.timestamp()
    assert intervals(exclusions, "availability") == [(t, t + 3 * 3600), (t + 5 * 3600, None)]
    assert intervals(exclusions, "latency") == [(t + 3600, t + 3 * 3600)]
    assert intervals(exclusions, "throughput") == []


def test_a_window_is_masked_only_where_the_work_reaches_into_it() -> None:
    t = T0.timestamp()
    spans = [(t, t + 3600.0)]
    assert touches(spans, t + 7200, 86400)
    assert not touches(spans, t + 7200, 600)  # the last 10 min: the work ended before
    assert touches([(t, None)], t + 7200, 300)  # still in progress
    assert not touches(spans, t - 60, 86400)  # not yet begun at that time


def test_the_masked_ratio_drops_the_slices_touching_the_interval() -> None:
    expr = masked_ratio_expression("err[5m]", "all[5m]", "30d", [(1000.0, 4600.0), (9000.0, None)])
    assert expr.count("[30d:5m]") == 2
    assert "vector(time()) > 1000.000" in expr
    assert "vector(time()) < 4900.000" in expr  # a slice ending up to one step after touches it
    assert "vector(time()) > 9000.000" in expr
    with pytest.raises(ValueError, match="needs an interval"):
        masked_ratio_expression("err[5m]", "all[5m]", "30d", [])


def test_the_batched_query_masks_only_the_windows_the_work_reaches() -> None:
    t = T0.timestamp()
    objectives = {"shop/shop/availability": ("err[{{.window}}]", "all[{{.window}}]", "30d")}
    spans = {"shop/shop/availability": [(t, t + 3600.0)]}
    query = batched_query(objectives, spans, t + 3 * 3600)
    for masked in ("30d", "1d", "6h", "3d"):
        assert f"[{masked}:5m]" in query, masked
    assert "[1h:5m]" not in query  # the last hour is after the work
    assert "err[1h]" in query
    assert "err[5m]" in query  # each slice is measured over one step
    assert batched_query(objectives) == batched_query(objectives, {}, t)


def test_status_round_trip_and_messages() -> None:
    e = Exclusion("failover", ("availability",), T0, T0 + HOUR, COMPLETED)
    assert Exclusion.from_status(e.as_status()) == e
    running = Exclusion("failover", ("availability",), T0, None, IN_PROGRESS)
    assert Exclusion.from_status(running.as_status()) == running
    assert Exclusion.from_status({"change": "x", "start": "not a time"}) is None
    # A state claimed without an end is provisional.
    claimed = {"change": "x", "objectives": ["a"], "start": "2026-12-01T10:00:00Z",
               "state": "Completed"}  # fmt: skip
    assert Exclusion.from_status(claimed) == Exclusion("x", ("a",), T0, None, IN_PROGRESS)
    assert "provisionally" in (exclusion_message(None, running) or "")
    assert "stays out of the error budget of availability" in (exclusion_message(running, e) or "")
    assert "did not complete" in (exclusion_message(running, None) or "")
    assert exclusion_message(e, e) is None


def _change(impact: object, phase: str = "InProgress") -> dict[str, object]:
    return {
        "metadata": {"name": "failover", "namespace": "shop"},
        "spec": {"service": "shop", **({"plannedImpact": impact} if impact else {})},
        "status": {"phase": phase, "execution": {"startedAt": "2026-12-01T10:00:00Z"}},
    }


def test_observe_reads_the_declared_objectives_and_the_operators_times() -> None:
    seen = observe(_change({"objectives": ["availability"]}))
    assert seen == ObservedChange("failover", ("availability",), "InProgress", T0, None)
    assert observe(_change(None)) is None


def test_an_emergency_change_may_not_declare_planned_impact() -> None:
    base = {"summary": "s", "service": "shop", "plannedImpact": {"objectives": ["availability"]}}
    ChangeSpec.model_validate({**base, "type": "normal"})
    with pytest.raises(ValueError, match="emergency change's impact counts against"):
        ChangeSpec.model_validate({**base, "type": "emergency"})
