"""The status page in Statuspage's summary.json shape, from services, incidents and changes."""

from __future__ import annotations

from datetime import UTC, datetime

from opsledger.domain.status_page import summary

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


def _level(service: str, exhausted: bool = False) -> dict:
    status = "True" if exhausted else "False"
    return {
        "metadata": {"namespace": "shop", "name": service, "uid": f"uid-{service}"},
        "spec": {"service": service, "description": f"the {service} service"},
        "status": {"conditions": [{"type": "BudgetExhausted", "status": status}]},
    }


def _incident(name: str, service: str, priority: str, state: str) -> dict:
    return {
        "metadata": {"namespace": "shop", "name": name, "uid": f"uid-{name}"},
        "spec": {
            "title": f"{name} title",
            "service": service,
            "state": state,
            "description": "the db password is hunter2",
        },
        "status": {
            "priority": priority,
            "openedAt": "2026-12-02T14:00:00Z",
            "timeline": [{"at": "2026-12-02T14:00:00Z", "event": "Opened"}],
        },
    }


def _change(name: str, service: str, phase: str) -> dict:
    return {
        "metadata": {"namespace": "shop", "name": name, "uid": f"uid-{name}"},
        "spec": {"summary": f"{name} summary", "service": service},
        "status": {
            "phase": phase,
            "window": {"start": "2026-12-02T21:00:00Z", "end": "2026-12-03T01:00:00Z"},
        },
    }


def test_each_service_shows_its_worst_state_and_the_page_its_worst_incident() -> None:
    page = summary(
        name="Acme",
        url="https://status.example/status",
        levels=[_level("checkout"), _level("search", exhausted=True), _level("pay"), _level("ok")],
        incidents=[
            _incident("down", "checkout", "P1", "Acknowledged"),
            _incident("slow", "checkout", "P3", "New"),
            _incident("fixed", "ok", "P1", "Resolved"),
        ],
        changes=[_change("upgrade", "pay", "InProgress"), _change("later", "ok", "Scheduled")],
        now=NOW,
    )
    states = {c["name"]: c["status"] for c in page["components"]}
    assert states == {
        "checkout": "major_outage",
        "search": "degraded_performance",
        "pay": "under_maintenance",
        "ok": "operational",  # its incident is resolved; its change only scheduled
    }
    assert page["status"] == {"indicator": "critical", "description": "Major System Outage"}
    [down, slow] = sorted(page["incidents"], key=lambda i: i["name"])
    assert (down["status"], down["impact"]) == ("identified", "critical")
    assert (slow["status"], slow["impact"]) == ("investigating", "minor")
    assert down["components"] == [{"id": "uid-checkout", "name": "checkout"}]
    assert down["incident_updates"][0]["body"] == "Opened"
    maintenance = {m["name"]: m for m in page["scheduled_maintenances"]}
    assert maintenance["later summary"]["status"] == "scheduled"
    assert maintenance["later summary"]["scheduled_for"] == "2026-12-02T21:00:00Z"
    assert maintenance["upgrade summary"]["status"] == "in_progress"


def test_the_public_page_carries_no_incident_details() -> None:
    page = summary(
        name="Acme",
        url="u",
        levels=[_level("checkout")],
        incidents=[_incident("down", "checkout", "P2", "New")],
        changes=[],
        now=NOW,
    )
    assert "hunter2" not in str(page)
    assert page["status"]["indicator"] == "major"


def test_all_quiet() -> None:
    page = summary(name="Acme", url="u", levels=[_level("a")], incidents=[], changes=[], now=NOW)
    assert page["status"] == {"indicator": "none", "description": "All Systems Operational"}
    assert page["components"][0]["status"] == "operational"
