"""A Change's conflicts and risk among the changes of its namespace, as status reports them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opsledger.domain.change_assessment import assess, burn_rate, entry, phase_of
from opsledger.models.change import ChangePhase, ChangeSpec
from opsledger.models.common import ConditionStatus

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def _spec(**extra: Any) -> ChangeSpec:
    return ChangeSpec.model_validate(
        {"type": "normal", "summary": "Upgrade web", "service": "shop", "targets": ["web"], **extra}
    )


RELATIONS = {"ns/checkout": [[("dependsOn", "web")]], "ns/web": [[]]}
CRITICALITY = {"ns/web": ["critical"], "ns/checkout": ["medium"]}


def _assess(entries: list[tuple[Any, ...]], spec: ChangeSpec | None = None) -> Any:
    return assess(
        namespace="ns",
        name="upgrade",
        spec=spec or _spec(),
        window={},
        active=False,
        entries=entries,
        relations=RELATIONS,
        criticality=CRITICALITY,
        level=None,
        now=T0,
    )


def test_a_change_in_progress_on_the_same_item_conflicts_and_blocks() -> None:
    found = _assess(
        [
            ("upgrade", ("web",), None, None, "Scheduled", None),  # itself
            ("hands-on", ("web",), None, None, "InProgress", None),
            ("later", ("web",), None, None, "Scheduled", None),
            ("done", ("web",), None, None, "Completed", "2026-11-24T00:00:00Z"),
        ]
    )
    assert found.status["conflicts"] == ["hands-on", "later"]
    assert found.blocked_by == ("hands-on",)
    assert found.condition.status == ConditionStatus.TRUE
    assert found.condition.reason == "Overlapping"
    assert "hands-on (in progress), later (overlapping)" in found.condition.message


def test_no_conflict_says_so_and_the_risk_counts_dependents_and_criticality() -> None:
    calm = _assess([])
    assert calm.condition.status == ConditionStatus.FALSE
    assert calm.condition.reason == "NoConflict"
    assert calm.affected == ("checkout", "web")
    assert "criticality critical" in calm.status["riskFactors"]
    assert "1 dependent item(s)" in calm.status["riskFactors"]
    assert calm.status["risk"] == "high"


def test_targets_no_item_is_known_for_are_named() -> None:
    assert _assess([], _spec(targets=["web", "ghost"])).unknown_targets == ("ghost",)


def test_a_failed_change_on_the_items_raises_the_risk() -> None:
    failed = ("old", ("web",), None, None, "RolledBack", "2026-11-20T00:00:00Z")
    assert "1 failed change(s) on these items in 30 days" in _assess([failed]).status["riskFactors"]


def test_index_entries_and_phases() -> None:
    obj = {
        "metadata": {"name": "x"},
        "spec": {"targets": ["web"], "schedule": {"notBefore": "2026-11-25T00:00:00Z"}},
        "status": {"phase": "Failed", "execution": {"finishedAt": "2026-11-25T01:00:00Z"}},
    }
    assert entry(obj) == (
        "x",
        ("web",),
        "2026-11-25T00:00:00Z",
        None,
        "Failed",
        "2026-11-25T01:00:00Z",
    )
    assert phase_of("Verifying") is ChangePhase.VERIFYING
    assert phase_of("Bogus") is None
    assert phase_of(None) is None


def test_the_fastest_one_hour_burn_rate_counts() -> None:
    level = {
        "status": {"objectives": [{"burnRates": {"1h": 2.5, "6h": 9}}, {"burnRates": {"1h": 4}}]}
    }
    assert burn_rate(level) == 4.0
    assert burn_rate(None) is None
