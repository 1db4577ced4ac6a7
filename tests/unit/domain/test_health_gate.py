"""A Change's pre-check gate reads its target items' measured health."""

from __future__ import annotations

from typing import Any

from opsledger.domain import changes
from opsledger.domain.changes import Health, Verdict


def _status(health: str, reason: str, message: str = "evidence") -> dict[str, Any]:
    status = "True" if health == "Healthy" else "Unknown" if health == "Unknown" else "False"
    return {
        "health": health,
        "conditions": [
            {
                "type": "Healthy",
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": "2026-11-01T00:00:00Z",
            }
        ],
    }


def _judge(items: dict[str, Any]) -> Verdict:
    verdict = Verdict()
    changes.judge_targets(items, verdict)
    return verdict


def test_a_down_target_holds_the_change_with_its_evidence() -> None:
    verdict = _judge(
        {"web": _status("Healthy", "Healthy"), "db": _status("Down", "Down", "replicas 0")}
    )
    assert verdict.health is Health.UNHEALTHY
    assert verdict.message == "target db is Down: replicas 0"


def test_unknown_because_prometheus_is_down_makes_the_change_wait() -> None:
    verdict = _judge({"web": _status("Unknown", "PrometheusUnavailable", "no answer")})
    assert verdict.health is Health.UNKNOWN
    assert "health of target web is unknown: no answer" in verdict.message


def test_items_without_signals_degraded_or_unmeasured_do_not_hold_it() -> None:
    verdict = _judge(
        {
            "batch": _status("Unknown", "NoData"),
            "web": _status("Degraded", "Degraded"),
            "new": {},
            "gone": None,
        }
    )
    assert verdict.health is Health.HEALTHY
