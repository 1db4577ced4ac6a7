"""Change rules in the domain: what an approval is, how health is judged, conflicts and risk."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from opsledger.domain import changes
from opsledger.domain.changes import Health, Planned, RecordVersion, Verdict
from opsledger.domain.impact import ImpactGraph
from opsledger.models.change import ChangeSpec, HealthCheck
from opsledger.models.servicelevel import ServiceLevelSpec

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def _spec(**extra: Any) -> ChangeSpec:
    return ChangeSpec.model_validate(
        {"type": "normal", "summary": "Upgrade web", "service": "shop", "targets": ["web"], **extra}
    )


def _record(spec_hash: str | None, uid: str | None = None) -> str:
    return yaml.safe_dump({"kind": "ChangeRecord", "metadata": {"uid": uid}, "specHash": spec_hash})


# -- approval ----------------------------------------------------------------------------


def test_the_hash_covers_what_is_approved_and_not_the_steering_fields() -> None:
    base = changes.spec_hash(_spec())
    assert base.startswith("sha256:")
    assert changes.spec_hash(_spec(done=True, cancelled=True)) == base
    assert changes.spec_hash(_spec(summary="Upgrade web to 3.0")) != base
    assert changes.spec_hash(_spec(targets=["web", "db"])) != base


def test_the_commit_that_brought_the_hash_is_the_approval() -> None:
    history = [
        RecordVersion("a1", "bot", T0, _record("sha256:old")),
        RecordVersion("b2", "Alice <a@x>", T0 + timedelta(hours=1), _record("sha256:new")),
        RecordVersion("c3", "OpsLedger <o@x>", T0 + timedelta(hours=2), _record("sha256:new")),
    ]
    found = changes.find_approval(history, "sha256:new")
    assert found is not None
    assert (found.sha, found.committer) == ("b2", "Alice <a@x>")


def test_a_stale_or_reverted_hash_is_no_approval() -> None:
    history = [
        RecordVersion("a1", "Alice <a@x>", T0, _record("sha256:new")),
        RecordVersion("b2", "Bob <b@x>", T0 + timedelta(hours=1), None),  # reverted: deleted
    ]
    assert changes.find_approval(history, "sha256:new") is None
    assert changes.find_approval([], "sha256:new") is None
    old = [RecordVersion("a1", "Alice <a@x>", T0, _record("sha256:old"))]
    assert changes.find_approval(old, "sha256:new") is None


def test_an_approval_of_another_object_of_the_same_name_does_not_replay() -> None:
    merged = [
        RecordVersion("a1", "Alice <a@x>", T0, _record("sha256:new", uid="uid-old")),
        RecordVersion(
            "b2", "OpsLedger <o@x>", T0 + timedelta(hours=1), _record("sha256:new", "uid-old")
        ),
    ]
    assert changes.find_approval(merged, "sha256:new", "uid-new") is None
    found = changes.find_approval(merged, "sha256:new", "uid-old")
    assert found is not None
    assert found.sha == "a1"
    # A record without a uid (written before approvals bound one) approves no object.
    unbound = [RecordVersion("a1", "Alice <a@x>", T0, _record("sha256:new"))]
    assert changes.find_approval(unbound, "sha256:new", "uid-new") is None


def test_unparsable_records_hold_no_hash() -> None:
    assert changes.recorded_hash("{not: [yaml") is None
    assert changes.recorded_hash("- a list") is None
    assert changes.recorded_hash(None) is None


# -- health ------------------------------------------------------------------------------


def _sample(value: str, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [0, value]}


def test_a_batched_answer_is_split_back_per_check() -> None:
    checks = [
        HealthCheck(name="errors", query="sum(rate(x[5m]))", below=0.01),
        HealthCheck(name="ready", query="kube_ready", above=0),
    ]
    query = changes.batched_checks_query(checks)
    assert query.count("label_replace") == 2
    assert " or " in query
    split = changes.split_batched(
        checks,
        [_sample("0.5", opsledger_check="1"), _sample("0.001", opsledger_check="0")],
    )
    assert [len(s) for s in split] == [1, 1]
    assert split[0][0]["value"][1] == "0.001"


def test_thresholds_no_data_and_nan() -> None:
    below = HealthCheck(name="errors", query="q", below=0.01)
    above = HealthCheck(name="ready", query="q", above=1)
    ok = Verdict()
    changes.judge_check(below, [_sample("0.001")], ok)
    changes.judge_check(above, [_sample("3")], ok)
    assert ok.health is Health.HEALTHY

    bad = Verdict()
    changes.judge_check(below, [_sample("0.001"), _sample("0.2")], bad)  # every series must pass
    assert bad.health is Health.UNHEALTHY
    assert "errors is 0.2, must be below 0.01" in bad.message

    empty = Verdict()
    changes.judge_check(below, [], empty)
    assert empty.health is Health.UNKNOWN
    assert "no data" in empty.message

    nan = Verdict()
    changes.judge_check(above, [_sample(str(math.nan))], nan)
    assert nan.health is Health.UNKNOWN


def test_unknown_outranks_unhealthy() -> None:
    verdict = Verdict()
    verdict.fail("errors too high")
    verdict.unknown("prometheus unreachable")
    verdict.fail("latency too high")
    assert verdict.health is Health.UNKNOWN


def test_no_critical_alert_is_healthy_and_a_firing_one_is_not() -> None:
    calm = Verdict()
    changes.judge_alerts([], calm)
    assert calm.health is Health.HEALTHY
    firing = Verdict()
    changes.judge_alerts([_sample("1", alertname="ShopDown")], firing)
    assert firing.health is Health.UNHEALTHY
    assert "ShopDown" in firing.message
    assert changes.critical_alerts_query('sh"op', "shop") == (
        'ALERTS{alertstate="firing",severity="critical",service="sh\\"op",namespace="shop"}'
    )


# -- conflicts ---------------------------------------------------------------------------

# api depends on db; web depends on api.
GRAPH = ImpactGraph(
    {"ns/api": [("dependsOn", "db")], "ns/web": [("dependsOn", "api")], "ns/db": []}
)


def _planned(name: str, *targets: str, start: int | None = 0, end: int | None = 4) -> Planned:
    return Planned(
        name=name,
        targets=frozenset(f"ns/{t}" for t in targets),
        start=T0 + timedelta(hours=start) if start is not None else None,
        end=T0 + timedelta(hours=end) if end is not None else None,
    )


def test_changes_on_the_same_item_at_the_same_time_conflict() -> None:
    me = _planned("a", "web")
    found = changes.conflicts(me, [me, _planned("b", "web", start=2, end=6)], GRAPH)
    assert [c.name for c in found] == ["b"]


def test_changes_on_items_that_depend_on_each_other_conflict_either_way() -> None:
    on_db = _planned("db-upgrade", "db")
    on_web = _planned("web-upgrade", "web")
    assert [c.name for c in changes.conflicts(on_db, [on_web], GRAPH)] == ["web-upgrade"]
    assert [c.name for c in changes.conflicts(on_web, [on_db], GRAPH)] == ["db-upgrade"]


def test_no_conflict_apart_in_time_or_on_unrelated_items() -> None:
    me = _planned("a", "web", start=0, end=4)
    later = _planned("b", "web", start=4, end=8)  # touching ends do not overlap
    other_item = _planned("c", "cache")
    assert changes.conflicts(me, [later, other_item], GRAPH) == []


def test_an_unknown_window_overlaps_everything() -> None:
    me = _planned("a", "web", start=None, end=None)
    assert [c.name for c in changes.conflicts(me, [_planned("b", "web", 100, 104)], GRAPH)] == ["b"]


def test_recent_failures_count_only_the_last_30_days_on_these_items() -> None:
    web = frozenset({"ns/web"})
    failures = [
        (web, T0 - timedelta(days=2)),
        (web, T0 - timedelta(days=45)),
        (frozenset({"ns/db"}), T0 - timedelta(days=1)),
    ]
    assert changes.recent_failures(failures, web, T0) == 1


# -- risk --------------------------------------------------------------------------------


def test_risk_grows_with_criticality_blast_radius_failures_and_burn() -> None:
    quiet = changes.assess_risk(
        criticalities=["low"], dependents=0, recent_failures=0, burn_rate=0.2, has_plan=True
    )
    assert quiet.level == "low"
    loud = changes.assess_risk(
        criticalities=["low", "critical"],
        dependents=4,
        recent_failures=1,
        burn_rate=6.0,
        has_plan=False,
    )
    assert loud.level == "high"
    assert loud.score > quiet.score
    assert "criticality critical" in loud.factors
    assert "4 dependent item(s)" in loud.factors
    assert "error budget burning at 6.0x" in loud.factors
    assert "manual work (permit)" in loud.factors


def test_a_change_s_window_comes_from_its_service_narrowed_by_its_schedule() -> None:
    level = ServiceLevelSpec.model_validate(
        {"service": "shop", "maintenanceWindows": [{"schedule": "0 22 * * *", "duration": "2h"}]}
    )
    noon = datetime(2026, 11, 25, 12, tzinfo=UTC)
    normal = changes.change_window(noon, _spec(), level)
    assert not normal.allowed
    assert normal.next is not None
    assert normal.next.start == datetime(2026, 11, 25, 22, tzinfo=UTC)
    later = _spec(schedule={"notBefore": "2026-11-27T00:00:00Z"})
    narrowed = changes.change_window(noon, later, level)
    assert narrowed.next is not None
    assert narrowed.next.start == datetime(2026, 11, 27, 22, tzinfo=UTC)
    emergency = changes.change_window(noon, _spec(type="emergency"), level)
    assert emergency.allowed


def _level(policy: bool = True) -> ServiceLevelSpec:
    return ServiceLevelSpec.model_validate(
        {
            "service": "shop",
            "errorBudgetPolicy": {"blockNormalChanges": policy},
            "objectives": [
                {
                    "name": "availability",
                    "objective": 99.9,
                    "window": "30d",
                    "sli": {"events": {"errorQuery": "e", "totalQuery": "t"}},
                }
            ],
        }
    )


def _conditions(measured: str, exhausted: str) -> dict[str, Any]:
    at = "2026-11-25T12:00:00Z"
    return {
        "conditions": [
            {"type": t, "status": v, "reason": "R", "message": m, "lastTransitionTime": at}
            for t, v, m in (
                ("Measured", measured, "no data"),
                ("BudgetExhausted", exhausted, "0.2 left"),
            )
        ]
    }


def test_an_exhausted_budget_holds_and_an_unmeasured_one_is_unknown() -> None:
    held = Verdict()
    changes.judge_budget(_conditions("True", "True"), _level(), held)
    assert held.health is Health.UNHEALTHY
    assert "error budget exhausted: 0.2 left" in held.message
    unknown = Verdict()
    changes.judge_budget(_conditions("False", "False"), _level(), unknown)
    assert unknown.health is Health.UNKNOWN
    fine = Verdict()
    changes.judge_budget(_conditions("True", "False"), _level(), fine)
    assert fine.health is Health.HEALTHY
    off = Verdict()
    changes.judge_budget(_conditions("True", "True"), _level(policy=False), off)
    assert off.health is Health.HEALTHY
