"""Capacity figures and the forecast of exhaustion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsledger.domain import capacity
from opsledger.models.configitem import CIClass

NOW = datetime(2026, 11, 1, tzinfo=UTC)
GIB = 2**30


def _tagged(resource: str, **measures: float) -> list[tuple[dict[str, str], float]]:
    return [
        ({"opsledger_resource": resource, "opsledger_measure": m}, v) for m, v in measures.items()
    ]


def test_a_growing_volume_runs_out_where_its_trend_meets_its_size() -> None:
    [storage] = capacity.resources_of(
        _tagged("storage", usage=80 * GIB, capacity=100 * GIB, fit=80 * GIB, slope=5 * GIB / 86400),
        NOW,
    )
    assert storage.exhausted_at == NOW + timedelta(days=4)
    assert storage.utilization == 80.0
    wire = storage.to_wire()
    assert wire["exhaustedAt"] == "2026-11-05T00:00:00Z"
    assert wire["trendPerDay"] == pytest.approx(5 * GIB, rel=1e-3)  # 4 significant digits


def test_workloads_run_out_at_their_limits_and_flat_usage_never() -> None:
    cpu, memory = capacity.resources_of(
        _tagged("cpu", usage=0.25, requests=0.5, limits=1.0, fit=0.25, slope=0.0)
        + _tagged("memory", usage=900.0, limits=1000.0, fit=900.0, slope=1.0),
        NOW,
    )
    assert cpu.capacity == 1.0
    assert cpu.exhausted_at is None
    assert cpu.utilization == 25.0
    assert memory.exhausted_at == NOW + timedelta(seconds=100)
    assert capacity.exhaustion(1200.0, -1.0, 1000.0, NOW) == NOW  # already over


def test_risk_within_the_horizon_and_an_incident_only_when_near() -> None:
    soon = capacity.Resource("storage", 90.0, None, None, 100.0, 1.0, NOW + timedelta(days=2))
    later = capacity.Resource("memory", 50.0, None, 80.0, 80.0, 1.0, NOW + timedelta(days=10))
    never = capacity.Resource("cpu", 0.1, None, 1.0, 1.0, 0.0, None)
    risk = capacity.risk([later, never, soon], NOW, timedelta(days=14), timedelta(days=3))
    assert [r.resource for r in risk.at_risk] == ["storage", "memory"]
    assert [r.resource for r in risk.near] == ["storage"]
    assert risk.message.startswith("storage runs out around 2026-11-03T00:00Z")
    spec = capacity.incident_spec(item="data", service="shop", resource=soon, now=NOW)
    assert (spec["impact"], spec["urgency"]) == ("low", "medium")
    assert spec["origin"] == {"type": "capacity", "reference": "data/storage"}
    assert capacity.incident_name("data", "storage") == "capacity-data-storage"


def test_one_capacity_query_per_class() -> None:
    query = capacity.capacity_query(CIClass.STORAGE, "604800s")
    assert query is not None
    assert "kubelet_volume_stats_used_bytes" in query
    assert "deriv(" in query
    assert "predict_linear(" in query
    assert "[604800s:5m]" in query
    assert capacity.capacity_query(CIClass.OTHER, "1h") is None
