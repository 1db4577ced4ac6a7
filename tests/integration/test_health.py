"""Health, availability, latency and capacity of ConfigurationItems against a real Prometheus
serving generated history (promtool backfill) and the real API server.

The history uses kube-state-metrics and cAdvisor names. Its figures are known exactly, so the
test computes what status must show independently of the operator's PromQL.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsledger.adapters.kube import Kube, api_client
from opsledger.adapters.metrics import Metrics
from opsledger.adapters.prometheus import Prometheus
from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.history import (
    CounterSeries,
    Family,
    GaugeSeries,
    create_blocks,
    prometheus_over,
    queries_served,
    write_families,
)
from opsledger.devenv.paths import Toolbox
from opsledger.models.configitem import CIClass
from opsledger.models.settings import Settings
from opsledger.services.context import Context
from opsledger.services.health import evaluate_once, load_templates
from tests.support import Kubectl, OperatorProcess, remote_record, wait_for

NOW = int(time.time()) // 300 * 300  # history is sampled on 5m boundaries, like the subqueries
END = NOW + 1800  # samples run 30 minutes into the future, so "now" stays covered
DAY = 86400
GIB = 2**30
LIVE, BULK = "health-live", "health-bulk"
BULK_ITEMS = 1000

# web: 3 replicas, none available for 2h three days ago, 2 of 3 available in the last 20 minutes
WEB_DOWN = (NOW - 3 * DAY, NOW - 3 * DAY + 7200)
# kwok-node-0: not Ready for 1h twelve hours ago
NODE_DOWN = (NOW - 12 * 3600, NOW - 11 * 3600)
# data: 100 GiB volume filling at 5 GiB/day, full at DATA_FULL; logs: 50 GiB at 2 GiB/day
DATA_FULL = NOW + 2 * DAY + 7 * 3600
LOGS_FULL = NOW + 10 * DAY
WEB_POD = "web-5d8f7c9b6-abcde"
BUCKETS = {"0.1": 4.0, "0.25": 8.0, "0.5": 9.5, "1": 10.0, "+Inf": 10.0}  # requests/s ≤ le


def _between(t: float, span: tuple[int, int]) -> bool:
    return span[0] <= t < span[1]


def _families() -> list[Family]:
    ns = {"namespace": LIVE}
    long, recent = (NOW - 31 * DAY, END), (NOW - 8 * DAY, END)

    def gauge(metric: str, series: list[GaugeSeries], span: tuple[int, int]) -> Family:
        return Family(metric, series, start=span[0], end=span[1], step=300)

    def counter(metric: str, series: list[CounterSeries]) -> Family:
        return Family(metric, series, start=recent[0], end=recent[1], step=60)

    pod = {**ns, "pod": WEB_POD, "container": "app"}
    bulk = [f"w-{i:04d}" for i in range(BULK_ITEMS)]

    def bulk_available(i: int) -> float:
        return 0.0 if i % 100 == 0 else 1.0 if i % 10 == 0 else 2.0

    short = (NOW - 7200, END)
    return [
        gauge(
            "kube_deployment_spec_replicas",
            [
                GaugeSeries({**ns, "deployment": "web"}, lambda t: 3.0),
                GaugeSeries({**ns, "deployment": "worker"}, lambda t: 1.0),
            ],
            long,
        ),
        gauge(
            "kube_deployment_status_replicas_available",
            [
                GaugeSeries(
                    {**ns, "deployment": "web"},
                    lambda t: 0.0 if _between(t, WEB_DOWN) else 2.0 if t >= NOW - 1200 else 3.0,
                ),
                GaugeSeries({**ns, "deployment": "worker"}, lambda t: 1.0),
            ],
            long,
        ),
        gauge(
            "kube_deployment_spec_replicas",
            [GaugeSeries({"namespace": BULK, "deployment": n}, lambda t: 2.0) for n in bulk],
            short,
        ),
        gauge(
            "kube_deployment_status_replicas_available",
            [
                GaugeSeries({"namespace": BULK, "deployment": n}, lambda t, i=i: bulk_available(i))
                for i, n in enumerate(bulk)
            ],
            short,
        ),
        gauge(
            "kube_node_status_condition",
            [
                GaugeSeries(
                    {"node": "kwok-node-0", "condition": "Ready", "status": "true"},
                    lambda t: 0.0 if _between(t, NODE_DOWN) else 1.0,
                ),
                GaugeSeries(
                    {"node": "kwok-node-0", "condition": "MemoryPressure", "status": "true"},
                    lambda t: 0.0,
                ),
            ],
            long,
        ),
        gauge("up", [GaugeSeries({**ns, "pod": WEB_POD}, lambda t: 1.0)], long),
        gauge("up", [GaugeSeries({**ns, "service": "api"}, lambda t: 1.0)], long),
        counter("container_cpu_usage_seconds", [CounterSeries(pod, lambda t: 0.25)]),
        counter("kube_pod_container_status_restarts", [CounterSeries(pod, lambda t: 0.0)]),
        gauge(
            "container_memory_working_set_bytes",
            [GaugeSeries(pod, lambda t: 400.0 * 2**20)],
            recent,
        ),
        gauge(
            "kube_pod_container_resource_requests",
            [
                GaugeSeries({**pod, "resource": "cpu"}, lambda t: 0.5),
                GaugeSeries({**pod, "resource": "memory"}, lambda t: 512.0 * 2**20),
            ],
            recent,
        ),
        gauge(
            "kube_pod_container_resource_limits",
            [
                GaugeSeries({**pod, "resource": "cpu"}, lambda t: 1.0),
                GaugeSeries({**pod, "resource": "memory"}, lambda t: 1.0 * GIB),
            ],
            recent,
        ),
        gauge(
            "kubelet_volume_stats_capacity_bytes",
            [
                GaugeSeries({**ns, "persistentvolumeclaim": "data"}, lambda t: 100.0 * GIB),
                GaugeSeries({**ns, "persistentvolumeclaim": "logs"}, lambda t: 50.0 * GIB),
            ],
            recent,
        ),
        gauge(
            "kubelet_volume_stats_used_bytes",
            [
                GaugeSeries(
                    {**ns, "persistentvolumeclaim": "data"},
                    lambda t: 100.0 * GIB - 5 * GIB * (DATA_FULL - t) / DAY,
                ),
                GaugeSeries(
                    {**ns, "persistentvolumeclaim": "logs"},
                    lambda t: 50.0 * GIB - 2 * GIB * (LOGS_FULL - t) / DAY,
                ),
            ],
            recent,
        ),
        gauge("queue_depth", [GaugeSeries({"queue": "jobs"}, lambda t: 2000.0)], recent),
        counter(
            "http_requests",
            [
                CounterSeries({**ns, "service": "api", "code": "200"}, lambda t: 10.0),
                CounterSeries({**ns, "service": "api", "code": "500"}, lambda t: 0.1),
            ],
        ),
        # the histogram's cumulative buckets, written as plain series (rate() reads them alike)
        Family(
            "http_request_duration_seconds_bucket",
            [
                GaugeSeries(
                    {**ns, "service": "api", "le": le},
                    lambda t, r=rate: r * (t - recent[0]),
                )
                for le, rate in BUCKETS.items()
            ],
            start=recent[0],
            end=recent[1],
            step=60,
        ),
    ]


class History:
    """One Prometheus over the generated history, which a test can stop."""

    def __init__(self, folder: Path) -> None:
        tools = Toolbox.locate()
        write_families(folder / "h.om", _families())
        create_blocks(tools, folder / "h.om", folder / "tsdb")
        self.stack = ExitStack()
        self.url = self.stack.enter_context(prometheus_over(tools, folder / "tsdb"))

    def queries_served(self) -> int:
        return queries_served(self.url)

    def stop(self) -> None:
        self.stack.close()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    h = History(tmp_path_factory.mktemp("health-history"))
    yield h
    h.stop()


def _quantile(q: float) -> float:
    """histogram_quantile's linear interpolation inside the bucket holding rank q × total."""
    bounds = [(float(le), count) for le, count in BUCKETS.items()]
    rank = q * bounds[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in bounds:
        if count >= rank:
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    raise AssertionError("rank beyond the last bucket")


def _items(kubectl: Kubectl, namespace: str) -> dict[str, dict[str, Any]]:
    return {i["metadata"]["name"]: i for i in kubectl.json("get", "ci", "-n", namespace)["items"]}


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    found = [c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_]
    assert found, f"{obj['metadata']['name']} has no {type_} condition"
    return found[0]


def test_a_thousand_items_cost_one_query_per_check_template(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, history: History
) -> None:
    operator.stop()  # only this evaluation asks this Prometheus anything
    try:
        kubectl("create", "namespace", BULK)
        docs = [
            f"apiVersion: opsledger.io/v1alpha1\nkind: ConfigurationItem\n"
            f"metadata: {{name: w-{i:04d}, namespace: {BULK}}}\n"
            f"spec: {{class: Workload, service: bulk}}\n"
            for i in range(BULK_ITEMS)
        ]
        kubectl("create", "-f", "-", input="---\n".join(docs))
        settings = Settings(
            kubeconfig=devenv.env()["KUBECONFIG"], namespaces=[BULK], prometheus_url=history.url
        )
        prometheus = Prometheus(history.url)
        ctx = Context(
            settings=settings,
            metrics=Metrics(),
            kube=Kube(api_client(settings.kubeconfig)),
            prometheus=prometheus,
        )
        templates = load_templates(settings)
        before = history.queries_served()
        started = time.monotonic()
        found = asyncio.run(evaluate_once(ctx, templates))
        took = time.monotonic() - started
        served = history.queries_served() - before
        # Workload: replicas, restarts and up checks, availability, capacity
        workload_templates = len(templates[CIClass.WORKLOAD]) + 2
        assert len(found.evaluations) == BULK_ITEMS
        assert served == found.queries == prometheus.queries == workload_templates == 5
        items = _items(kubectl, BULK)
        health = Counter(i["status"].get("health") for i in items.values())
        assert health == {"Healthy": 900, "Degraded": 90, "Down": 10}
        degraded = items["w-0010"]
        assert _condition(degraded, "Healthy")["status"] == "False"
        assert "replicas 0.5 is below 1" in _condition(degraded, "Healthy")["message"]
        down = items["w-0100"]["status"]
        assert next(c for c in down["healthChecks"] if c["name"] == "replicas")["state"] == "Down"
        assert down["availability"] == {"1d": 0.0, "7d": 0.0, "30d": 0.0}
        assert items["w-0001"]["status"]["availability"] == {"1d": 100.0, "7d": 100.0, "30d": 100.0}
        print(
            f"\n{BULK_ITEMS} items: {served} PromQL queries, evaluated and written in {took:.1f}s"
        )
    finally:
        kubectl.run("delete", "namespace", BULK, "--wait=true", "--timeout=120s", check=False)
        operator.start()


SERVICE_LEVEL = f"""
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: api, namespace: {LIVE}}}
spec:
  service: api
  latency: {{quantile: 0.99, threshold: 300ms}}
---
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: shop, namespace: {LIVE}}}
spec: {{service: shop}}
"""

ITEMS = f"""
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: web, namespace: {LIVE}}}
spec: {{class: Workload, service: shop}}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: worker, namespace: {LIVE}}}
spec:
  class: Workload
  service: shop
  monitoring:
    checks:
    - name: queue
      query: queue_depth{{queue="jobs"}}
      degraded: {{above: 100}}
      down: {{above: 1000}}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: api, namespace: {LIVE}}}
spec: {{class: Service, service: api}}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: kwok-node-0, namespace: {LIVE}}}
spec:
  source: {{apiVersion: v1, kind: Node, name: kwok-node-0}}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: data, namespace: {LIVE}}}
spec: {{class: Storage, service: shop}}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: logs, namespace: {LIVE}}}
spec: {{class: Storage, service: shop}}
"""


def _pct(up_fraction: float) -> float:
    return round(100 * up_fraction, 2)


def test_status_shows_the_figures_of_the_generated_history(
    devenv: DevEnvironment,
    kubectl: Kubectl,
    operator: OperatorProcess,
    history: History,
    tmp_path: Path,
) -> None:
    operator.stop()
    measuring = OperatorProcess(devenv, tmp_path / "health-operator.log").start(
        env={"OPSLEDGER_PROMETHEUS_URL": history.url, "OPSLEDGER_HEALTH_INTERVAL": "2"}
    )
    try:
        kubectl("create", "namespace", LIVE)
        kubectl("apply", "-f", "-", input=SERVICE_LEVEL + "---" + ITEMS)

        def evaluated() -> dict[str, dict[str, Any]] | None:
            items = _items(kubectl, LIVE)
            done = all(
                i.get("status", {}).get("health") and i["status"].get("cmdb")
                for i in items.values()
            )
            return items if len(items) == 6 and done else None

        items = wait_for(evaluated, timeout=90, what="six items evaluated")
        web, worker, api = items["web"]["status"], items["worker"]["status"], items["api"]["status"]

        # health with its evidence
        assert web["health"] == "Degraded"
        replicas = next(c for c in web["healthChecks"] if c["name"] == "replicas")
        assert replicas["value"] == pytest.approx(2 / 3, abs=1e-4)
        assert "replicas 0.6667 is below 1" in _condition(items["web"], "Healthy")["message"]
        assert {c["name"]: c["state"] for c in web["healthChecks"]} == {
            "replicas": "Degraded",
            "restarts": "Healthy",
            "up": "Healthy",
        }
        assert worker["health"] == "Down"
        assert "queue 2000 is above 1000" in _condition(items["worker"], "Healthy")["message"]
        assert items["kwok-node-0"]["status"]["health"] == "Healthy"

        # availability: 2h of 7d (and of 30d) without a ready replica; the node 1h of a day
        assert web["availability"] == {
            "1d": 100.0,
            "7d": _pct(1 - 7200 / (7 * DAY)),
            "30d": _pct(1 - 7200 / (30 * DAY)),
        }
        assert items["kwok-node-0"]["status"]["availability"] == {
            "1d": _pct(1 - 3600 / DAY),
            "7d": _pct(1 - 3600 / (7 * DAY)),
            "30d": _pct(1 - 3600 / (30 * DAY)),
        }

        def recorded() -> Any:
            path = f"clusters/test/{LIVE}/configurationitems/web.yaml"
            return (remote_record(devenv, path) or {}).get("availability")

        assert wait_for(recorded, timeout=30, what="availability in the CMDB record") == {
            "1d": 100.0,
            "7d": web["availability"]["7d"],
            "30d": web["availability"]["30d"],
        }

        # the service is no more available than its least available item, per window
        parts = [items[n]["status"].get("availability") for n in ("web", "worker", "data", "logs")]
        least = {w: min(a[w] for a in parts if a) for w in ("1d", "7d", "30d")}
        assert least["7d"] == web["availability"]["7d"]  # web's two hours down are the worst
        wait_for(
            lambda: (
                kubectl.json("get", "slo", "shop", "-n", LIVE).get("status", {}).get("availability")
                == least
            ),
            what="the service's availability on its ServiceLevel",
        )

        # performance: the quantiles of the generated buckets, p99 against 300ms
        assert api["performance"]["latency"] == {
            "p50": pytest.approx(_quantile(0.5), rel=1e-3),
            "p90": pytest.approx(_quantile(0.9), rel=1e-3),
            "p99": pytest.approx(_quantile(0.99), rel=1e-3),
        }
        assert api["performance"]["objective"] == "p99<300ms"
        assert api["performance"]["withinObjective"] is False
        # the service is as slow as its slowest item (here its only one), on its ServiceLevel
        wait_for(
            lambda: (
                kubectl.json("get", "slo", "api", "-n", LIVE).get("status", {}).get("performance")
                == api["performance"]
            ),
            what="the service's latency on its ServiceLevel",
        )
        assert api["health"] == "Degraded"
        errors = next(c for c in api["healthChecks"] if c["name"] == "errors")
        assert errors["state"] == "Healthy"
        assert errors["value"] == pytest.approx(0.1 / 10.1, rel=1e-3)

        # capacity: usage against requests and limits
        cpu, memory = web["capacity"]
        assert (cpu["resource"], memory["resource"]) == ("cpu", "memory")
        assert cpu["usage"] == pytest.approx(0.25, rel=1e-3)
        assert (cpu["requests"], cpu["limits"], cpu["capacity"]) == (0.5, 1.0, 1.0)
        assert cpu["utilization"] == pytest.approx(25.0, abs=0.01)
        assert memory["usage"] == pytest.approx(400 * 2**20, rel=1e-3)
        assert memory["utilization"] == pytest.approx(100 * 400 / 1024, abs=0.01)
        assert "exhaustedAt" not in memory
        assert _condition(items["web"], "CapacityRisk")["status"] == "False"

        # the growth trends: CapacityRisk with the exhaustion date, an Incident when it is near
        for name, full in (("data", DATA_FULL), ("logs", LOGS_FULL)):
            [storage] = items[name]["status"]["capacity"]
            predicted = datetime.fromisoformat(storage["exhaustedAt"].replace("Z", "+00:00"))
            truth = datetime.fromtimestamp(full, UTC)
            assert abs((predicted - truth).total_seconds()) < DAY, (name, predicted, truth)
            risk = _condition(items[name], "CapacityRisk")
            assert risk["status"] == "True"
            assert risk["reason"] == "ExhaustionPredicted"
            assert f"storage runs out around {predicted:%Y-%m-%d}" in risk["message"]
        data = items["data"]["status"]["capacity"][0]
        assert data["trendPerDay"] == pytest.approx(5 * GIB, rel=1e-3)

        def capacity_incidents() -> list[dict[str, Any]]:
            return [
                i
                for i in kubectl.json("get", "incidents", "-n", LIVE)["items"]
                if (i["spec"].get("origin") or {}).get("type") == "capacity"
            ]

        [incident] = wait_for(capacity_incidents, timeout=30, what="a capacity incident")
        assert incident["metadata"]["name"] == "capacity-data-storage"
        assert (incident["spec"]["impact"], incident["spec"]["urgency"]) == ("low", "medium")
        assert incident["spec"]["configurationItems"] == ["data"]
        time.sleep(5)  # more evaluations: still one incident, none for logs (10 days away)
        assert [i["metadata"]["name"] for i in capacity_incidents()] == ["capacity-data-storage"]

        history.stop()

        def unknown() -> dict[str, Any] | None:
            condition = _condition(kubectl.json("get", "ci", "web", "-n", LIVE), "Healthy")
            return condition if condition["reason"] == "PrometheusUnavailable" else None

        condition = wait_for(unknown, timeout=60, what="health Unknown once Prometheus stops")
        assert condition["status"] == "Unknown"
        assert kubectl.json("get", "ci", "web", "-n", LIVE)["status"]["health"] == "Unknown"
    finally:
        measuring.stop()
        operator.start()
