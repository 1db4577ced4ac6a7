"""Metric history with known properties, loaded into a real Prometheus with promtool.

Tests and benchmarks describe counters by their rate over time; this writes the OpenMetrics text,
turns it into TSDB blocks with `promtool tsdb create-blocks-from openmetrics`, and starts a
Prometheus over them, so PromQL answers can be compared with numbers computed independently.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from opsledger.devenv.paths import Toolbox
from opsledger.devenv.processes import free_ports, stop_child, tail


@dataclass(frozen=True)
class CounterSeries:
    """A counter whose per-second rate at time t (Unix seconds) is `rate(t)`."""

    labels: Mapping[str, str]
    rate: Callable[[float], float]


def write_openmetrics(
    path: Path,
    metric: str,
    series: list[CounterSeries],
    *,
    start: int,
    end: int,
    step: int = 60,
    help_text: str = "Generated counter.",
) -> None:
    """Counter samples from `start` to `end` (inclusive) every `step` seconds."""
    with path.open("w") as out:
        out.write(f"# HELP {metric} {help_text}\n# TYPE {metric} counter\n")
        for s in series:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            value = 0.0
            for t in range(start, end + 1, step):
                if t > start:
                    value += s.rate(t - step / 2) * step  # midpoint rule over the step
                out.write(f"{metric}_total{{{labels}}} {value:.6f} {t}\n")
        out.write("# EOF\n")


@dataclass(frozen=True)
class GaugeSeries:
    """A gauge whose value at time t (Unix seconds) is `value(t)`."""

    labels: Mapping[str, str]
    value: Callable[[float], float]


@dataclass(frozen=True)
class Family:
    """One metric family: counters (`rate`) or gauges (`value`), sampled from `start` to `end`
    every `step` seconds (a family's series share its span)."""

    metric: str
    series: Sequence[CounterSeries | GaugeSeries]
    start: int
    end: int
    step: int = 60


def write_families(path: Path, families: Iterable[Family]) -> None:
    """Several families in one OpenMetrics file (one promtool run makes blocks for all).

    Families of one metric name are merged (OpenMetrics allows a family once per file)."""
    merged: dict[str, list[Family]] = {}
    for family in families:
        merged.setdefault(family.metric, []).append(family)
    with path.open("w") as out:
        for metric, parts in merged.items():
            counter = isinstance(parts[0].series[0], CounterSeries) if parts[0].series else False
            kind = "counter" if counter else "gauge"
            out.write(f"# HELP {metric} Generated {kind}.\n# TYPE {metric} {kind}\n")
            name = f"{metric}_total" if counter else metric
            for family in parts:
                for s in family.series:
                    labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                    value = 0.0
                    for t in range(family.start, family.end + 1, family.step):
                        if isinstance(s, CounterSeries):
                            if t > family.start:
                                value += s.rate(t - family.step / 2) * family.step
                        else:
                            value = s.value(t)
                        out.write(f"{name}{{{labels}}} {value:.6f} {t}\n")
        out.write("# EOF\n")


def create_blocks(tools: Toolbox, openmetrics: Path, data_dir: Path) -> None:
    """TSDB blocks for `openmetrics`, written into `data_dir` (promtool's own backfill)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            str(tools.binary("promtool")),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=768h",
            str(openmetrics),
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"promtool could not create blocks: {result.stderr.strip()}")


def queries_served(url: str) -> int:
    """Instant queries the Prometheus at `url` has answered, by its own count (its /metrics,
    which needs no scrape): what tests and benchmarks count batched evaluations by."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = r'^prometheus_http_requests_total\{[^}]*handler="/api/v1/query"[^}]*\} (\S+)$'
    return int(sum(float(v) for v in re.findall(pattern, text, re.MULTILINE)))


@contextmanager
def prometheus_over(tools: Toolbox, data_dir: Path) -> Iterator[str]:
    """A Prometheus serving `data_dir` on a free loopback port; yields its URL."""
    [port] = free_ports(1)
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "prometheus.yml"
        config.write_text("global: {scrape_interval: 1m}\n")
        log = Path(scratch) / "prometheus.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    str(tools.binary("prometheus")),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data_dir}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=3650d",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"prometheus exited: {tail(log)}")
                try:
                    with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"prometheus not ready within 60s: {tail(log)}")
                time.sleep(0.2)
            yield url
        finally:
            stop_child(proc)
