"""How ServiceLevel evaluation scales with the number of objectives (a benchmark, not a test).

For N services, each with one 99.9 %/30d objective, it backfills 31 days of request counters (a
sample every 2 minutes) into a real Prometheus (promtool) and evaluates every objective twice:

- batched, as the operator does (services.servicelevel.evaluate_service_levels): one query for
  all eight windows of up to 250 objectives;
- one query per objective and window, as a straightforward evaluator would.

It prints the queries Prometheus served (from its own /metrics), the wall time of each, and
the ratio; both must give the same numbers, which it checks.

    .venv/bin/python bench/slo_scale.py [N ...]      # default: 10 50 100
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from opsledger.adapters.prometheus import Prometheus
from opsledger.devenv.history import (
    CounterSeries,
    create_blocks,
    prometheus_over,
    queries_served,
    write_openmetrics,
)
from opsledger.devenv.paths import Toolbox
from opsledger.domain.slo import BURN_WINDOWS, ratio_expression
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.services.servicelevel import ServiceLevelRef, evaluate_service_levels

WINDOW = "30d"


def _spec(service: str) -> ServiceLevelSpec:
    selector = f'service="{service}"'
    return ServiceLevelSpec.model_validate(
        {
            "service": service,
            "objectives": [
                {
                    "name": "availability",
                    "objective": 99.9,
                    "window": WINDOW,
                    "sli": {
                        "events": {
                            "errorQuery": f'sum(rate(http_requests_total{{{selector},code="500"}}'
                            "[{{.window}}]))",
                            "totalQuery": f"sum(rate(http_requests_total{{{selector}}}"
                            "[{{.window}}]))",
                        }
                    },
                }
            ],
        }
    )


def run(count: int, tools: Toolbox, folder: Path) -> dict[str, float]:
    now = int(time.time()) // 300 * 300 - 600
    services = [f"svc-{i:04d}" for i in range(count)]
    series = []
    for i, s in enumerate(services):
        errors = 0.001 * (1 + i % 20)  # 0.01 % to 0.2 % of 10 requests per second
        series += [
            CounterSeries({"service": s, "code": "200"}, lambda t: 10.0),
            CounterSeries({"service": s, "code": "500"}, lambda t, e=errors: e),
        ]
    write_openmetrics(
        folder / "h.om", "http_requests", series, start=now - 31 * 86400, end=now, step=120
    )
    create_blocks(tools, folder / "h.om", folder / "tsdb")
    at = datetime.fromtimestamp(now, UTC)
    refs = [ServiceLevelRef("bench", s, _spec(s)) for s in services]
    with prometheus_over(tools, folder / "tsdb") as url:
        prometheus = Prometheus(url, timeout=300)
        before = queries_served(url)
        started = time.perf_counter()
        batched = evaluate_service_levels(prometheus, refs, at)
        batched_s = time.perf_counter() - started
        batched_q = queries_served(url) - before

        before = queries_served(url)
        started = time.perf_counter()
        single: dict[str, dict[str, float]] = {}
        for ref in refs:
            events = ref.spec.objectives[0].sli.events
            for w in (WINDOW, *BURN_WINDOWS):
                [answer] = prometheus.instant(
                    ratio_expression(events.error_query, events.total_query, w), at
                )
                single.setdefault(ref.name, {})[w] = float(answer["value"][1])
        single_s = time.perf_counter() - started
        single_q = queries_served(url) - before
    for ref in refs:  # the same numbers either way
        [e] = batched[(ref.namespace, ref.name)]
        for w in BURN_WINDOWS:
            assert math.isclose(e.burn_rates[w] or 0, single[ref.name][w] / 0.001, rel_tol=1e-9)
    return {
        "objectives": float(count),
        "batched_q": batched_q,
        "batched_s": batched_s,
        "single_q": single_q,
        "single_s": single_s,
    }


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [10, 50, 100]
    tools = Toolbox.locate()
    rows = []
    for count in counts:
        with tempfile.TemporaryDirectory() as scratch:
            rows.append(run(count, tools, Path(scratch)))
    print(
        f"{'objectives':>10} {'batched q':>10} {'batched s':>10} "
        f"{'per-window q':>13} {'per-window s':>13} {'time ratio':>11}"
    )
    for r in rows:
        print(
            f"{r['objectives']:10.0f} {r['batched_q']:10.0f} {r['batched_s']:10.2f} "
            f"{r['single_q']:13.0f} {r['single_s']:13.2f} {r['single_s'] / r['batched_s']:10.1f}×"
        )
    first, last = rows[0], rows[-1]
    print(
        f"\n{last['objectives'] / first['objectives']:.0f}× the objectives: batched "
        f"{last['batched_q'] / max(first['batched_q'], 1):.1f}× the queries and "
        f"{last['batched_s'] / first['batched_s']:.1f}× the time; per window "
        f"{last['single_q'] / max(first['single_q'], 1):.1f}× the queries and "
        f"{last['single_s'] / first['single_s']:.1f}× the time"
    )


if __name__ == "__main__":
    main()
