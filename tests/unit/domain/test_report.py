"""The monthly service review's text and charts, from facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsledger.domain.kpi import ChangeKpiFact, IncidentKpiFact, compute
from opsledger.domain.report import (
    CapacityFigure,
    ExclusionFigure,
    ObjectiveFigure,
    ProblemFigure,
    ReviewFacts,
    capacity_figures,
    charts,
    month_bounds,
    previous_month,
    problem_figures,
    render,
    report_path,
)

START, END = month_bounds("2026-11")
H = timedelta(hours=1)


def test_month_bounds_and_the_previous_month() -> None:
    assert month_bounds("2026-11") == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert month_bounds("2026-12")[1] == datetime(2027, 1, 1, tzinfo=UTC)
    assert previous_month(datetime(2027, 1, 3, tzinfo=UTC)) == "2026-12"
    with pytest.raises(ValueError, match="2026-11"):
        month_bounds("2026-13")


def _facts() -> ReviewFacts:
    kpis = compute(
        [
            IncidentKpiFact("P1", "Resolved", START + H, START + 1.5 * H, START + 3 * H),
            IncidentKpiFact("P3", "New", START + 5 * H, response_breached=True),
        ],
        [
            ChangeKpiFact("normal", "Completed", START, START + 2 * H),
            ChangeKpiFact("normal", "RolledBack", START, START + 4 * H),
            ChangeKpiFact("standard", "Completed", START, START + H),
        ],
        now=END,
        window=END - START,
    )
    return ReviewFacts(
        cluster="eu-1",
        month="2026-11",
        kpis=kpis,
        objectives=[ObjectiveFigure("shop", "checkout", "availability", 99.9, 99.95, 0.5)],
        exclusions=[
            ExclusionFigure(
                "shop", "checkout", "failover", ["availability"], START + H, START + 2 * H
            )
        ],
        capacity=[CapacityFigure("shop", "orders-db", "storage runs out on 2026-12-09")],
        problems=[ProblemFigure("shop", "ci-web", 3, "pool too small")],
    )


def test_the_report_has_every_section_with_the_figures() -> None:
    text = render(_facts())
    assert text.startswith("# Service review 2026-11 — eu-1\n")
    assert "| shop | checkout | availability | 99.9 | 99.950 | 0.50 | yes |" in text
    assert "| P1 | 1 | 30m | 2h00m | 0 | 0 |" in text
    assert "| P3 | 1 | – | – | 1 | 0 |" in text
    assert "| normal | 1 | 0 | 1 | 0 | 0 |" in text
    assert "| change failure rate | 33.3% |" in text
    assert "| shop | orders-db | storage runs out on 2026-12-09 |" in text
    assert "| shop | ci-web | 3 | pool too small |" in text
    planned = "| failover | availability | 2026-11-01T01:00:00Z | 2026-11-01T02:00:00Z |"
    assert f"| shop | checkout {planned}" in text
    assert "![Incidents by priority](2026-11/incidents.svg)" in text
    assert render(_facts()) == text  # deterministic: no commit when nothing changed


def test_charts_are_named_beside_the_report() -> None:
    files = [c.file for c in charts(_facts())]
    assert files == ["incidents.svg", "changes.svg", "error-budgets.svg"]
    assert report_path("eu-1", "2026-11") == "reports/eu-1/2026-11.md"


def test_problems_of_the_month_and_capacity_risks_are_read_off_the_objects() -> None:
    def incident(name: str, opened: str, cause: str | None = None) -> dict[str, object]:
        return {
            "metadata": {"namespace": "shop", "name": name},
            "spec": {"rootCause": cause} if cause else {},
            "status": {"priority": "P3", "openedAt": opened, "problem": "ci-web"},
        }

    incidents = [
        incident("a", "2026-10-30T10:00:00Z", "pool too small"),
        incident("b", "2026-11-02T10:00:00Z"),
        {"metadata": {"namespace": "shop", "name": "c"}, "status": {"priority": "P1"}},
    ]
    assert problem_figures(incidents, START, END) == [
        ProblemFigure("shop", "ci-web", 2, "pool too small")
    ]
    assert problem_figures(incidents[:1], START, END) == []  # none of it opened in November
    items = [
        {
            "metadata": {"namespace": "shop", "name": "orders-db"},
            "status": {
                "conditions": [
                    {"type": "CapacityRisk", "status": "True", "message": "storage full soon"}
                ]
            },
        },
        {"metadata": {"namespace": "shop", "name": "web"}, "status": {"conditions": []}},
    ]
    assert capacity_figures(items) == [CapacityFigure("shop", "orders-db", "storage full soon")]
