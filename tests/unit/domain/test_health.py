"""Health judgement, matching batched answers to items, availability and latency."""

from __future__ import annotations

import pytest

from opsledger.domain import health
from opsledger.domain.health import Item
from opsledger.models.common import LatencyObjective, ObjectReference
from opsledger.models.configitem import (
    CheckOverride,
    CIClass,
    Health,
    Monitoring,
    Threshold,
)

REPLICAS = CheckOverride(
    name="replicas", query="q", degraded=Threshold(below=1), down=Threshold(below=0.001)
)


def _item(name: str, **monitoring: object) -> Item:
    m = Monitoring.model_validate(monitoring)
    return Item(
        namespace="shop",
        name=name,
        class_=CIClass.WORKLOAD,
        match=health.identity("shop", name, CIClass.WORKLOAD, None, m),
        monitoring=m,
    )


def _series(value: float, **labels: str) -> dict[str, object]:
    return {"metric": labels, "value": [0, str(value)]}


def test_identity_comes_from_the_source_and_monitoring_match_overrides_it() -> None:
    source = ObjectReference(api_version="apps/v1", kind="StatefulSet", name="db")
    assert health.identity("shop", "ci", CIClass.DATABASE, source, None) == {
        "namespace": "shop",
        "workload": "StatefulSet/db",
    }
    assert health.identity("shop", "web", CIClass.WORKLOAD, None, None)["workload"] == (
        "Deployment/web"
    )
    node = ObjectReference(api_version="v1", kind="Node", name="n1")
    assert health.identity("x", "ci", CIClass.NODE, node, None) == {"node": "n1"}
    custom = Monitoring(match={"workload": "Deployment/web-v2"})
    assert health.identity("shop", "web", CIClass.WORKLOAD, None, custom)["workload"] == (
        "Deployment/web-v2"
    )


def test_one_answer_is_split_to_the_items_by_their_labels() -> None:
    items = [_item("web"), _item("api")]
    answer = [
        _series(1, namespace="shop", workload="Deployment/web"),
        _series(0.5, namespace="shop", workload="Deployment/api"),
        _series(0, namespace="other", workload="Deployment/web"),
    ]
    split = health.assign(answer, items)
    assert [v for _, v in split["shop/web"]] == [1.0]
    assert [v for _, v in split["shop/api"]] == [0.5]


@pytest.mark.parametrize(
    ("values", "state"),
    [([1.0], "Healthy"), ([1.0, 0.5], "Degraded"), ([0.0], "Down"), ([], "NoData")],
)
def test_the_worst_series_decides_a_check(values: list[float], state: str) -> None:
    assert health.judge(REPLICAS, values).state == state


def test_an_item_is_unknown_only_when_no_check_has_data() -> None:
    no_data = health.judge(REPLICAS, [])
    down = health.judge(REPLICAS, [0.0])
    assert health.overall([no_data]) == Health.UNKNOWN
    assert health.overall([no_data, health.judge(REPLICAS, [1.0])]) == Health.HEALTHY
    assert health.overall([no_data, down]) == Health.DOWN
    assert "replicas 0 is below 0.001 (Down)" in health.evidence([no_data, down])


def test_an_items_own_check_replaces_the_default_of_that_name() -> None:
    item = _item("web", checks=[{"name": "replicas", "query": "my_query", "down": {"below": 0.5}}])
    query = health.custom_query([item])
    assert query is not None
    assert "my_query" in query
    assert 'opsledger_ci", "shop/web"' in query
    answers = {
        health.check_key("replicas"): {"shop/web": [({}, 0.0)]}  # the default: Down
    }
    custom = {"replicas": [({}, 0.9)]}
    e = health.evaluate_item(item, [REPLICAS], answers, custom)
    assert [(c.name, c.state) for c in e.checks] == [("replicas", "Healthy")]


def test_availability_per_window_to_a_hundredth_of_a_percent() -> None:
    samples = [
        ({"opsledger_window": "1d"}, 1.0),
        ({"opsledger_window": "7d"}, 1 - 24 / 2016),
        ({"opsledger_window": "30d"}, float("nan")),
    ]
    assert health.availability_of(samples) == {"1d": 100.0, "7d": 98.81}
    assert health.service_availability(
        [("shop", {"1d": 99.5, "7d": 99.9}), ("shop", {"1d": 99.9, "7d": 98.0}), (None, None)]
    ) == {"shop": {"1d": 99.5, "7d": 98.0}}


def test_latency_is_judged_against_the_objective() -> None:
    objective = LatencyObjective(quantile=0.99, threshold="300ms")
    slow = health.performance_of({0.5: 0.1, 0.99: 0.45}, objective)
    assert slow == {
        "latency": {"p50": 0.1, "p99": 0.45},
        "objective": "p99<300ms",
        "withinObjective": False,
    }
    assert health.performance_of({0.99: 0.2}, objective)["withinObjective"] is True
    assert "withinObjective" not in health.performance_of({0.5: 0.2}, objective)


def test_a_service_is_as_slow_as_its_slowest_item() -> None:
    fast = {"latency": {"p50": 0.01, "p99": 0.2}}
    slow = {"latency": {"p50": 0.05, "p99": 0.35}}
    objectives = {"shop": LatencyObjective(quantile=0.99, threshold="300ms")}
    found = health.service_performance(
        [("shop", fast), ("shop", slow), ("api", fast), ("shop", None), (None, slow)], objectives
    )
    assert found == {
        "shop": {
            "latency": {"p50": 0.05, "p99": 0.35},
            "objective": "p99<300ms",
            "withinObjective": False,
        },
        "api": {"latency": {"p50": 0.01, "p99": 0.2}},
    }


def test_a_check_needs_a_threshold_and_one_bound_each() -> None:
    with pytest.raises(ValueError, match="degraded, down or both"):
        CheckOverride(name="x", query="q")
    with pytest.raises(ValueError, match="exactly one"):
        Threshold(below=1, above=2)


def test_one_query_per_template_whatever_the_number_of_items() -> None:
    templates = health.default_checks()
    assert [t.name for t in templates[CIClass.WORKLOAD]] == ["replicas", "restarts", "up"]
    assert "kube_deployment_status_replicas_available" in templates[CIClass.WORKLOAD][0].query
    query = health.availability_query("up")
    assert query.count("avg_over_time") == 3
    assert "[30d:5m]" in query
