"""What the guard adds to a `kubectl` request (a benchmark, not a test).

In one real local environment (the project's own `opsledger dev` components) the operator runs
with its admission webhook registered. Measured through the API server with the Kubernetes
client, N requests each:

- floor: scaling an unprotected Deployment in a namespace without protected objects (the API
  server alone: no webhook is called, the narrow scope at work);
- a denied scale of a protected Deployment whose service has a plain weekly window (the guard
  decides, and computes the next window for its message);
- the same denial where the service's ServiceLevel is the dense one from issue 15 (a window
  every minute for one second, inside a year-long freeze): every denial decides its next
  window (it took 2-3 s of CPU on the event loop before the window arithmetic).

    .venv/bin/python bench/webhook_latency.py [N]     # default 300

Prints p50/p99 per case and writes bench/results/webhook_latency.json.
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
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from opsledger.adapters.kube import api_client
from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.paths import Toolbox

ROOT = Path(__file__).resolve().parents[1]


def _deployment(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": f"{name}:1.0"}]},
            },
        },
    }


def _level(namespace: str, dense: bool) -> dict[str, Any]:
    now = datetime.now(UTC)
    windows = (
        [{"schedule": "* * * * *", "duration": "1s"}]
        if dense
        else [{"schedule": "0 22 * * 6", "duration": "4h", "timeZone": "Europe/Berlin"}]
    )
    freezes = (
        [
            {
                "start": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": (now + timedelta(days=364)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "reason": "a year-long migration",
            }
        ]
        if dense
        else []
    )
    return {
        "apiVersion": "opsledger.io/v1alpha1",
        "kind": "ServiceLevel",
        "metadata": {"name": "shop", "namespace": namespace},
        "spec": {"service": "shop", "maintenanceWindows": windows, "freezes": freezes},
    }


def _item(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "opsledger.io/v1alpha1",
        "kind": "ConfigurationItem",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "class": "Workload",
            "service": "shop",
            "protected": True,
            "source": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        },
    }


def _apply(env: DevEnvironment, *docs: dict[str, Any]) -> None:
    env.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))


def _timed(count: int, call: Callable[[int], None]) -> dict[str, float]:
    samples = []
    for i in range(count):
        started = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[max(0, int(len(samples) * 0.99) - 1)], 2),
        "max_ms": round(samples[-1], 2),
    }


def run(count: int, tools: Toolbox, folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"requests": count}
    with ExitStack() as stack:
        env = DevEnvironment(folder / "env", tools, cluster="bench")
        stack.callback(env.down)
        env.up()
        env.kubectl("apply", "-f", str(ROOT / "crds"))
        env.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds")
        )
        for ns in ("free", "weekly", "dense"):
            env.kubectl("create", "namespace", ns)
        _apply(env, _deployment("web", "free"))
        for ns in ("weekly", "dense"):
            _apply(env, _deployment("web", ns), _level(ns, dense=ns == "dense"), _item(ns))
        log = (folder / "operator.log").open("wb")
        stack.callback(log.close)
        operator = subprocess.Popen(
            [sys.executable, "-m", "opsledger", "run"],
            env={
                **os.environ,
                **env.env(),
                "OPSLEDGER_MONTHLY_REVIEW": "false",
                "OPSLEDGER_CHANGE_INTERVAL": "1",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(operator.wait, 30)
        stack.callback(operator.terminate)
        api = api_client(str(env.kubeconfig))
        stack.callback(api.close)
        apps = client.AppsV1Api(api)
        health = f"http://127.0.0.1:{env.ports()['operator-health']}/healthz"
        _wait(lambda: _ok(health), "the operator")

        def scale(ns: str, expect_denied: bool) -> Callable[[int], None]:
            def call(i: int) -> None:
                try:
                    apps.patch_namespaced_deployment_scale(
                        "web", ns, {"spec": {"replicas": 2 + i % 2}}
                    )
                except ApiException as exc:
                    if not expect_denied or exc.status != 403:
                        raise
                else:
                    if expect_denied:
                        raise AssertionError(f"the scale of {ns}/web was let through")

            return call

        for ns in ("weekly", "dense"):
            _wait(lambda ns=ns: _denied(apps, ns), f"the guard on {ns}/web")
        result["floor_unprotected"] = _timed(count, scale("free", expect_denied=False))
        result["denied_weekly_window"] = _timed(count, scale("weekly", expect_denied=True))
        result["denied_dense"] = _timed(count, scale("dense", expect_denied=True))
    return result


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _denied(apps: client.AppsV1Api, ns: str) -> bool:
    try:
        apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 3}})
    except ApiException as exc:
        return exc.status == 403
    return False


def _wait(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(f"waited {timeout}s for {what}")


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 300
    folder = Path(tempfile.mkdtemp(prefix="webhook-latency-"))
    try:
        result = run(count, Toolbox.locate(), folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{'case':<24}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for case in (
        "floor_unprotected",
        "denied_weekly_window",
        "denied_dense",
    ):
        r = result[case]
        print(f"{case:<24}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['max_ms']:>10}")
    out = ROOT / "bench" / "results" / "webhook_latency.json"
    out.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d"), **result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
