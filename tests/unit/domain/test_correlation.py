"""Recurring incidents make problems; recently completed changes are suspected causes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsledger.domain.correlation import (
    CompletedChange,
    IncidentFact,
    find_problems,
    problem_of,
    suspected_cause,
)
from opsledger.domain.impact import ImpactGraph

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def _incident(name: str, hours: float, *items: str, **kw: object) -> IncidentFact:
    return IncidentFact(name=name, opened_at=T0 + timedelta(hours=hours), items=items, **kw)  # type: ignore[arg-type]


def test_three_incidents_on_one_item_within_the_period_are_a_problem() -> None:
    incidents = [
        _incident("a", 0, "checkout-api"),
        _incident("b", 30, "checkout-api", "payments-db"),
        _incident("c", 100, "checkout-api"),
        _incident("d", 1, "payments-db"),
    ]
    [problem] = find_problems(incidents, threshold=3, period=WEEK)
    assert problem.name == "ci-checkout-api"
    assert (problem.subject_kind, problem.subject) == ("ConfigurationItem", "checkout-api")
    assert [i.name for i in problem.incidents] == ["a", "b", "c"]
    assert problem.detected_at == T0 + timedelta(hours=100)
    assert problem.state == "Open"
    assert problem_of("b", [problem]) is problem
    assert problem_of("d", [problem]) is None


def test_incidents_spread_wider_than_the_period_are_not_a_problem() -> None:
    incidents = [_incident(n, h, "web") for n, h in (("a", 0), ("b", 100), ("c", 24 * 8))]
    assert find_problems(incidents, threshold=3, period=WEEK) == []
    assert len(find_problems(incidents, threshold=3, period=timedelta(days=8))) == 1


def test_incidents_naming_only_a_service_recur_on_the_service() -> None:
    incidents = [
        IncidentFact(name=n, opened_at=T0 + timedelta(hours=h), service="shop")
        for n, h in (("a", 0), ("b", 1), ("c", 2))
    ]
    [problem] = find_problems(incidents, threshold=3, period=WEEK)
    assert (problem.name, problem.subject_kind) == ("service-shop", "Service")


def test_the_latest_root_cause_is_the_known_error_and_its_resolution_the_workaround() -> None:
    incidents = [
        _incident(
            "a",
            0,
            "db",
            root_cause="disk full",
            resolution="freed space",
            resolved_at=T0 + timedelta(hours=1),
        ),
        _incident(
            "b",
            5,
            "db",
            root_cause="WAL archiving stuck",
            resolution="restarted archiver",
            resolved_at=T0 + timedelta(hours=6),
        ),
        _incident("c", 9, "db"),
    ]
    [problem] = find_problems(incidents, threshold=3, period=WEEK)
    assert problem.state == "KnownError"
    assert problem.known_error == "WAL archiving stuck"
    assert problem.workaround == "restarted archiver"


def test_a_change_shortly_before_on_the_item_or_what_it_depends_on_is_suspected() -> None:
    graph = ImpactGraph({"shop/web": [("dependsOn", "orders-db")]})
    opened = T0 + timedelta(hours=3)
    changes = [
        CompletedChange("resize-db", ("shop/orders-db",), T0 + timedelta(hours=2)),
        CompletedChange("old-web", ("shop/web",), T0 - timedelta(hours=5)),
        CompletedChange("later", ("shop/web",), T0 + timedelta(hours=4)),
        CompletedChange("elsewhere", ("shop/cart",), T0 + timedelta(hours=2, minutes=30)),
    ]
    window = timedelta(hours=2)
    found = suspected_cause(
        {"shop/web"}, opened, changes, window=window, dependents=graph.dependents
    )
    assert found == "resize-db"
    assert (
        suspected_cause({"shop/cart2"}, opened, changes, window=window, dependents=graph.dependents)
        is None
    )
    # the database's incident does not suspect a change to the web tier that depends on it
    web_change = [CompletedChange("web", ("shop/web",), T0 + timedelta(hours=2))]
    assert (
        suspected_cause(
            {"shop/orders-db"}, opened, web_change, window=window, dependents=graph.dependents
        )
        is None
    )
