"""KPIs and DORA from incident and change facts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from opsledger.domain.kpi import ChangeKpiFact, IncidentKpiFact, change_fact, compute, incident_fact

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
WINDOW = timedelta(days=30)


def test_open_incidents_times_and_breaches_by_priority() -> None:
    incidents = [
        IncidentKpiFact("P1", "New", NOW - 2 * H, response_breached=True),
        IncidentKpiFact("P1", "Resolved", NOW - 10 * H, NOW - 9 * H, NOW - 6 * H),
        IncidentKpiFact("P1", "Closed", NOW - 20 * H, NOW - 19.5 * H, NOW - 18 * H),
        IncidentKpiFact("P3", "Acknowledged", NOW - 5 * H, NOW - 4 * H),
        IncidentKpiFact("P3", "New", NOW - 40 * 24 * H, resolution_breached=True),  # before
    ]
    k = compute(incidents, [], now=NOW, window=WINDOW)
    assert k.open_incidents == {"P1": 1, "P2": 0, "P3": 2, "P4": 0, "P5": 0}
    assert k.mean_time_to_acknowledge["P1"] == pytest.approx((3600 + 1800) / 2)
    assert k.mean_time_to_resolve["P1"] == pytest.approx((4 * 3600 + 2 * 3600) / 2)
    assert k.mean_time_to_resolve["P3"] is None
    assert k.sla_breaches[("P1", "response")] == 1
    assert k.sla_breaches[("P3", "resolution")] == 0  # opened before the window
    assert k.incidents_by_priority == {"P1": 3, "P3": 1}


def test_the_four_dora_metrics() -> None:
    changes = [
        ChangeKpiFact("normal", "Completed", NOW - 50 * H, NOW - 48 * H),  # lead 2h
        ChangeKpiFact("normal", "Completed", NOW - 30 * H, NOW - 26 * H),  # lead 4h
        ChangeKpiFact("standard", "Completed", NOW - 10 * H, NOW - 9 * H),  # lead 1h
        ChangeKpiFact("normal", "RolledBack", NOW - 8 * H, NOW - 7 * H),
        ChangeKpiFact("emergency", "Rejected", NOW - 6 * H, NOW - 5 * H),  # not carried out
        ChangeKpiFact("normal", "InProgress", NOW - 1 * H),
        ChangeKpiFact("normal", "Completed", NOW - 60 * 24 * H, NOW - 59 * 24 * H),  # before
    ]
    incidents = [
        IncidentKpiFact("P2", "Resolved", NOW - 7 * H, None, NOW - 6.5 * H, caused_by_change=True),
        IncidentKpiFact("P2", "Resolved", NOW - 3 * H, None, NOW - 1 * H, caused_by_change=True),
        IncidentKpiFact("P2", "Resolved", NOW - 3 * H, None, NOW - 2 * H),  # not a change's
    ]
    k = compute(incidents, changes, now=NOW, window=WINDOW)
    assert k.deployments_per_day == pytest.approx(3 / 30)
    assert k.lead_time == pytest.approx(2 * 3600)
    assert k.change_failure_rate == pytest.approx(1 / 4)
    assert k.time_to_restore == pytest.approx((1800 + 7200) / 2)
    assert k.change_outcomes[("normal", "Completed")] == 2
    assert k.change_outcomes[("emergency", "Rejected")] == 1
    assert k.change_outcomes[("standard", "Failed")] == 0


def test_nothing_carried_out_has_no_failure_rate() -> None:
    k = compute([], [], now=NOW, window=WINDOW)
    assert k.change_failure_rate is None
    assert k.lead_time is None
    assert k.deployments_per_day == 0
    assert not math.isnan(k.deployments_per_day)


def test_facts_are_read_off_the_objects() -> None:
    incident = incident_fact(
        {
            "spec": {"state": "Resolved", "origin": {"type": "alertmanager"}},
            "status": {
                "priority": "P2",
                "openedAt": "2026-11-25T10:00:00Z",
                "acknowledgedAt": "2026-11-25T10:05:00Z",
                "resolvedAt": "2026-11-25T11:00:00Z",
                "sla": {"responseBreached": True},
                "suspectedCause": "resize-db",
            },
        }
    )
    assert incident == IncidentKpiFact(
        "P2",
        "Resolved",
        NOW - 2 * H,
        NOW - 2 * H + timedelta(minutes=5),
        NOW - H,
        response_breached=True,
        caused_by_change=True,
    )
    assert incident_fact({"spec": {}, "status": {}}) is None  # not handled yet
    change = change_fact(
        {
            "metadata": {"creationTimestamp": "2026-11-25T09:00:00Z"},
            "spec": {"type": "standard"},
            "status": {
                "phase": "Completed",
                "transitions": [
                    {"phase": "Approved", "at": "2026-11-25T09:01:00Z"},
                    {"phase": "Completed", "at": "2026-11-25T11:00:00Z"},
                ],
            },
        }
    )
    assert change == ChangeKpiFact("standard", "Completed", NOW - 3 * H, NOW - H)
