"""How the health evaluation scales with the number of ConfigurationItems (a benchmark, not a test).

For N workload items it backfills two hours of kube-state-metrics history into a real Prometheus
(promtool), then runs the operator's own evaluation (services.health_queries.evaluate_items) and
prints: the PromQL queries Prometheus served (the design target: one per check template, whatever
N), the wall time, time per item, and the peak Python memory of the evaluation.

    .venv/bin/python bench/health_scale.py [N ...]      # default: 100 1000 5000
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from opsledger.adapters.prometheus import Prometheus
from opsledger.devenv.history import (
    Family,
    GaugeSeries,
    create_blocks,
    prometheus_over,
    queries_served,
    write_families,
)
from opsledger.devenv.paths import Toolbox
from opsledger.models.settings import Settings
from opsledger.services.health_queries import evaluate_items, load_templates, parse_item

NAMESPACE = "bench"


def run(count: int, tools: Toolbox, folder: Path) -> dict[str, float]:
    now = int(time.time()) // 300 * 300
    span = (now - 7200, now + 1800)
    names = [f"w-{i:05d}" for i in range(count)]
    families = [
        Family(
            "kube_deployment_spec_replicas",
            [GaugeSeries({"namespace": NAMESPACE, "deployment": n}, lambda t: 2.0) for n in names],
            start=span[0],
            end=span[1],
            step=300,
        ),
        Family(
            "kube_deployment_status_replicas_available",
            [
                GaugeSeries(
                    {"namespace": NAMESPACE, "deployment": n},
                    lambda t, i=i: 1.0 if i % 10 == 0 else 2.0,
                )
                for i, n in enumerate(names)
            ],
            start=span[0],
            end=span[1],
            step=300,
        ),
    ]
    write_families(folder / "h.om", families)
    create_blocks(tools, folder / "h.om", folder / "tsdb")
    with ExitStack() as stack:
        url = stack.enter_context(prometheus_over(tools, folder / "tsdb"))
        settings = Settings(prometheus_url=url)
        items = [
            item
            for n in names
            if (
                item := parse_item(
                    {
                        "metadata": {"namespace": NAMESPACE, "name": n},
                        "spec": {"class": "Workload", "service": "bench"},
                    }
                )
            )
            is not None
        ]
        templates = load_templates(settings)
        before = queries_served(url)
        tracemalloc.start()
        started = time.perf_counter()
        found = evaluate_items(
            Prometheus(url), items, templates, settings=settings, now=datetime.now(UTC)
        )
        took = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        served = queries_served(url) - before
    degraded = sum(1 for e in found.evaluations.values() if e.health.value == "Degraded")
    return {
        "items": float(count),
        "queries": served,
        "seconds": took,
        "ms_per_item": 1000 * took / count,
        "peak_mib": peak / 2**20,
        "degraded": float(degraded),
    }


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [100, 1000, 5000]
    tools = Toolbox.locate()
    rows = []
    for count in counts:
        with tempfile.TemporaryDirectory() as scratch:
            rows.append(run(count, tools, Path(scratch)))
    print(
        f"{'items':>7} {'queries':>8} {'seconds':>8} {'ms/item':>8} {'peak MiB':>9} {'degraded':>9}"
    )
    for r in rows:
        print(
            f"{r['items']:9.0f} {r['queries']:9.0f} {r['seconds']:9.2f} {r['ms_per_item']:9.2f} "
            f"{r['peak_mib']:9.1f} {r['degraded']:9.0f}"
        )
    first, last = rows[0], rows[-1]
    print(
        f"\n{last['items'] / first['items']:.0f}× the items: "
        f"{last['queries'] / max(first['queries'], 1):.1f}× the queries, "
        f"{last['seconds'] / first['seconds']:.1f}× the time, "
        f"{last['peak_mib'] / max(first['peak_mib'], 1e-9):.1f}× the memory"
    )


if __name__ == "__main__":
    main()
