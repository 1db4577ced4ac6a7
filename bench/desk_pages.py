"""How fast the service desk's pages render at size (a benchmark, not a test).

In one real local environment: 1,000 Incidents, 1,000 Changes, 5,000 ConfigurationItems (a tree of
dependsOn in each namespace), 500 ServiceRequests and 50 ServiceLevels with windows, blackouts
and freezes in the API server, then `opsledger desk`
started on it. Each page is fetched N times by one signed-in client (the proxy's headers from
127.0.0.1), after the desk's watches have listed everything. The floor, in the same run, is the
same server's /healthz: no template, no cache read. Target: every page under 200 ms.

    .venv/bin/python bench/desk_pages.py [N]     # default 30

Prints p50/p99 per page with the floor and writes bench/results/desk_pages.json.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.paths import Toolbox
from opsledger.devenv.processes import free_ports

ROOT = Path(__file__).resolve().parents[1]
HEADERS = {"X-Forwarded-User": "bench", "X-Forwarded-Groups": "sre"}
SIZES = {"incidents": 1000, "changes": 1000, "items": 5000, "levels": 50, "requests": 500}
API = "opsledger.io/v1alpha1"


def _objects() -> Iterator[dict[str, Any]]:
    now = datetime.now(UTC)
    for n in range(SIZES["levels"]):
        yield {
            "apiVersion": API,
            "kind": "ServiceLevel",
            "metadata": {"name": f"svc-{n}", "namespace": f"team-{n % 10}"},
            "spec": {
                "service": f"svc-{n}",
                "maintenanceWindows": [{"schedule": "0 22 * * 6", "duration": "4h"}],
                "blackouts": [{"schedule": "0 15 * * 5", "duration": "9h", "reason": "Friday"}],
                "freezes": [
                    {
                        "start": (now + timedelta(days=n % 20)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "end": (now + timedelta(days=n % 20 + 2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "reason": "release freeze",
                    }
                ],
            },
        }
    for n in range(SIZES["incidents"]):
        yield {
            "apiVersion": API,
            "kind": "Incident",
            "metadata": {"name": f"inc-{n}", "namespace": f"team-{n % 10}"},
            "spec": {
                "title": f"Incident number {n}",
                "service": f"svc-{n % SIZES['levels']}",
                "impact": ("high", "medium", "low")[n % 3],
                "urgency": ("high", "medium", "low")[n // 3 % 3],
                "state": "New",
            },
        }
    for n in range(SIZES["changes"]):
        yield {
            "apiVersion": API,
            "kind": "Change",
            "metadata": {"name": f"chg-{n}", "namespace": f"team-{n % 10}"},
            "spec": {
                "type": "normal",
                "summary": f"Change number {n}",
                "service": f"svc-{n % SIZES['levels']}",
            },
        }
    for n in range(SIZES["items"]):
        yield {
            "apiVersion": API,
            "kind": "ConfigurationItem",
            "metadata": {"name": f"item-{n}", "namespace": f"team-{n % 10}"},
            "spec": {
                "service": f"svc-{n % SIZES['levels']}",
                "class": "Application",
                # a tree in each namespace: item-n depends on its parent, so pictures have depth
                "relationships": (
                    [{"type": "dependsOn", "target": f"item-{(n // 10 - 1) // 2 * 10 + n % 10}"}]
                    if n >= 20
                    else []
                ),
            },
        }
    for n in range(SIZES["requests"]):
        yield {
            "apiVersion": API,
            "kind": "ServiceRequest",
            "metadata": {"name": f"sr-{n}", "namespace": f"team-{n % 10}"},
            "spec": {"item": "scale-web", "parameters": {"replicas": n % 9 + 1}},
        }


def _create(env: DevEnvironment) -> None:
    batch: list[dict[str, Any]] = []
    for obj in _objects():
        batch.append(obj)
        if len(batch) == 500:
            env.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1",
                        "kind": "List", "items": batch}))  # fmt: skip
            batch = []
    if batch:
        env.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                    "items": batch}))  # fmt: skip


def _get(url: str) -> float:
    request = urllib.request.Request(url, headers=HEADERS)
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}")
    return (time.perf_counter() - began) * 1000


def _timed(url: str, count: int) -> dict[str, float]:
    _get(url)  # warm
    samples = sorted(_get(url) for _ in range(count))
    return {
        "p50_ms": round(statistics.median(samples), 1),
        "p99_ms": round(samples[max(0, int(len(samples) * 0.99) - 1)], 1),
        "max_ms": round(samples[-1], 1),
    }


PAGES = {
    "floor (/healthz)": "/healthz",
    "services": "/",
    "incidents": "/incidents",
    "incidents of a service": "/incidents?service=svc-7&state=open",
    "incident": "/incidents/team-3/inc-3",
    "calendar week": "/calendar?view=week",
    "calendar month": "/calendar?view=month",
    "status": "/status",
    "summary.json": "/api/v2/summary.json",
    "report form": "/report",
    "changes": "/changes",
    "change": "/changes/team-3/chg-3",
    "cmdb search": "/cmdb?q=svc-7",
    "item (impact picture)": "/cmdb/team-3/item-1003",
    "requests (everyone's)": "/requests?all",
}


def run(count: int, tools: Toolbox, folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"requests": count, "objects": SIZES}
    with ExitStack() as stack:
        env = DevEnvironment(folder / "env", tools, cluster="bench")
        stack.callback(env.down)
        env.up()
        env.kubectl("apply", "-f", str(ROOT / "crds"))
        env.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds")
        )
        for n in range(10):
            env.kubectl("create", "namespace", f"team-{n}")
        began = time.monotonic()
        _create(env)
        result["create_seconds"] = round(time.monotonic() - began, 1)
        [port] = free_ports(1)
        log = (folder / "desk.log").open("wb")
        stack.callback(log.close)
        desk = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opsledger",
                "desk",
                "--bind-address",
                "127.0.0.1",
                "--port",
                str(port),
                "--trusted-proxy",
                "127.0.0.1/32",
            ],
            env={**os.environ, "OPSLEDGER_DESK_KUBECONFIG": str(env.kubeconfig)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(desk.wait, 30)
        stack.callback(desk.terminate)
        base = f"http://127.0.0.1:{port}"
        began = time.monotonic()
        deadline = began + 180
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the desk did not list the cluster in 180 s")
            time.sleep(0.2)
        result["cache_ready_seconds"] = round(time.monotonic() - began, 1)
        result["pages"] = {name: _timed(base + path, count) for name, path in PAGES.items()}
        rss = Path(f"/proc/{desk.pid}/status").read_text()
        result["desk_rss_mb"] = round(
            int(next(line.split()[1] for line in rss.splitlines() if line.startswith("VmRSS")))
            / 1024
        )
    return result


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 30
    folder = Path(tempfile.mkdtemp(prefix="desk-pages-"))
    try:
        result = run(count, Toolbox.locate(), folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    floor = result["pages"]["floor (/healthz)"]["p50_ms"]
    print(
        f"{SIZES['incidents']} incidents, {SIZES['changes']} changes, {SIZES['items']} items, "
        f"{SIZES['levels']} ServiceLevels; the desk's cache listed them in "
        f"{result['cache_ready_seconds']} s; desk RSS {result['desk_rss_mb']} MB"
    )
    print(f"{'page':<24}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'p50/floor':>11}")
    for name, r in result["pages"].items():
        ratio = r["p50_ms"] / floor if floor else 0.0
        print(f"{name:<24}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['max_ms']:>9}{ratio:>10.1f}×")
    out = ROOT / "bench" / "results" / "desk_pages.json"
    out.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d"), **result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
