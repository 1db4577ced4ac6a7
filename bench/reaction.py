"""How soon the operator reacts (a benchmark, not a test).

In one real local environment, the operator started with its production intervals (a Change's
lifecycle is looked at every OPSLEDGER_CHANGE_INTERVAL, 10 s), N trials each, every moment seen
by polling the API server every 20 ms with the Kubernetes client:

- **alert → Incident**: Alertmanager's notification posted to the operator's receiver, until
  the Incident exists;
- **merge → Approved**: a normal change's proposal merged into the CMDB's protected branch
  (a real `git merge` pushed to the remote), until the Change says Approved;
- **window → InProgress**: an approved change whose `schedule.notBefore` passes inside an open
  window, until it is InProgress.

The floor, in the same run: an Incident created straight through the API server, until the
same polling sees it (what any reaction pays to be seen). Targets: alert ≤ 1 s; merge ≤ 5 s;
window ≤ 2 s plus the change interval.

    .venv/bin/python bench/reaction.py [N]     # default 20

Prints p50/p99 per reaction with the floor and writes bench/results/reaction.json.
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
NS = "react"
POLL = 0.02
GROUP, VERSION = "opsledger.io", "v1alpha1"
ALICE = {
    "GIT_AUTHOR_NAME": "Alice Approver",
    "GIT_AUTHOR_EMAIL": "alice@example.com",
    "GIT_COMMITTER_NAME": "Alice Approver",
    "GIT_COMMITTER_EMAIL": "alice@example.com",
}
SETUP = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: shop, namespace: {NS}}}
spec:
  service: shop
  maintenanceWindows: [{{schedule: "* * * * *", duration: 2m}}]
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: web, namespace: {NS}}}
spec: {{class: Workload, service: shop}}
"""


def _rfc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _until(check: Callable[[], Any], what: str, timeout: float = 120.0) -> float:
    """The moment (time.monotonic) `check` first answers truthy, polled every 20 ms."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(POLL)
    raise TimeoutError(f"waited {timeout:g} s for {what}")


def _figures(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_s": round(statistics.median(ordered), 3),
        "p99_s": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 3),
        "max_s": round(ordered[-1], 3),
        "trials": len(ordered),
    }


class Cluster:
    def __init__(self, env: DevEnvironment, api: client.ApiClient, work: Path) -> None:
        self.env = env
        self.custom = client.CustomObjectsApi(api)
        self.work = work

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, NS, plural, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def create(self, plural: str, kind: str, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, plural, body)

    def status(self, name: str) -> dict[str, Any]:
        return (self.get("changes", name) or {}).get("status") or {}

    def merge(self, branch: str) -> None:
        """A reviewer merges the proposal into main and pushes (again when the operator pushed
        first)."""
        env = {**os.environ, **ALICE}
        for _ in range(5):
            for args in (
                ("fetch", "--quiet", "origin"),
                ("reset", "--quiet", "--hard", "origin/main"),
                ("merge", "--quiet", "--no-ff", f"origin/{branch}", "-m", f"Approve {branch}"),
            ):
                subprocess.run(["git", *args], cwd=self.work, env=env, check=True)
            pushed = subprocess.run(["git", "push", "--quiet"], cwd=self.work, env=env, check=False)
            if pushed.returncode == 0:
                return
        raise RuntimeError(f"could not push the merge of {branch}")


def _floor(cluster: Cluster, trials: int) -> list[float]:
    samples = []
    for i in range(trials):
        began = time.monotonic()
        cluster.create("incidents", "Incident", f"floor-{i}", {"title": f"floor {i}"})
        samples.append(_until(lambda i=i: cluster.get("incidents", f"floor-{i}"), "it") - began)
    return samples


def _alerts(cluster: Cluster, trials: int) -> list[float]:
    env = cluster.env
    url = f"http://127.0.0.1:{env.ports()['operator-receiver']}/alertmanager"
    token = env.receiver_token_file.read_text().strip()
    samples = []
    for i in range(trials):
        alertname = f"BenchAlert{i}"
        body = {
            "version": "4",
            "status": "firing",
            "receiver": "opsledger",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": alertname, "namespace": NS, "severity": "warning"},
                    "annotations": {"summary": f"bench alert {i}"},
                    "startsAt": _rfc(datetime.now(UTC)),
                }
            ],
        }
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )

        def opened(alertname: str = alertname) -> bool:
            found = cluster.custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                NS,
                "incidents",
                label_selector=f"opsledger.io/alertname={alertname}",
            )
            return bool(found["items"])

        began = time.monotonic()
        with urllib.request.urlopen(request, timeout=30):
            pass
        samples.append(_until(opened, f"the incident of {alertname}") - began)
    return samples


def _create_change(cluster: Cluster, name: str, not_before: datetime, target: str) -> None:
    spec: dict[str, Any] = {
        "type": "normal",
        "summary": f"Bench {name}",
        "service": "shop",
        "targets": [target],  # one item each: two changes in progress on one would conflict
        "schedule": {"notBefore": _rfc(not_before)},
    }
    cluster.create("changes", "Change", name, spec)


def _proposal(cluster: Cluster, name: str) -> str:
    _until(
        lambda: (cluster.status(name).get("approval") or {}).get("proposalBranch"),
        f"the proposal of {name}",
    )
    return str(cluster.status(name)["approval"]["proposalBranch"])


def _change(cluster: Cluster, name: str, not_before: datetime, target: str = "web") -> str:
    _create_change(cluster, name, not_before, target)
    return _proposal(cluster, name)


def _merges(cluster: Cluster, trials: int) -> list[float]:
    samples = []
    for i in range(trials):
        name = f"merge-{i}"
        branch = _change(cluster, name, datetime.now(UTC) + timedelta(days=30))
        cluster.merge(branch)
        merged = time.monotonic()
        approved = _until(
            lambda name=name: (cluster.status(name).get("approval") or {}).get("approvedAt"),
            f"{name} approved",
        )
        samples.append(approved - merged)
    return samples


def _windows(cluster: Cluster, trials: int) -> list[float]:
    """Approved changes whose notBefore passes a few seconds apart, inside the open window:
    all made and approved first (proposed and merged together), then each start watched."""
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=150)
    starts = {f"start-{i}": first + timedelta(seconds=3 * i) for i in range(trials)}
    for i, (name, at) in enumerate(starts.items()):
        cluster.create("configurationitems", "ConfigurationItem", f"web-{i}", {"service": "shop"})
        _create_change(cluster, name, at, f"web-{i}")
    for name in starts:
        cluster.merge(_proposal(cluster, name))
    for name in starts:
        _until(
            lambda name=name: (cluster.status(name).get("approval") or {}).get("approvedAt"),
            f"{name} approved",
            timeout=240,
        )
    if datetime.now(UTC) > first:
        raise RuntimeError("the changes were approved too late to measure their starts")
    seen: dict[str, datetime] = {}
    deadline = time.monotonic() + 300
    while len(seen) < len(starts) and time.monotonic() < deadline:
        for name in starts:  # all at once: each seen within one round (a few ms per change)
            if name not in seen and cluster.status(name).get("phase") == "InProgress":
                seen[name] = datetime.now(UTC)
        time.sleep(POLL)
    if len(seen) < len(starts):
        raise TimeoutError(f"not in progress after 300 s: {sorted(set(starts) - set(seen))}")
    return [(seen[name] - at).total_seconds() for name, at in starts.items()]


def run(trials: int, tools: Toolbox, folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"trials": trials, "change_interval_s": 10}
    with ExitStack() as stack:
        env = DevEnvironment(folder / "env", tools, cluster="bench")
        stack.callback(env.down)
        env.up()
        env.kubectl("apply", "-f", str(ROOT / "crds"))
        env.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds")
        )
        env.kubectl("apply", "-f", "-", input=SETUP)
        log = (folder / "operator.log").open("wb")
        stack.callback(log.close)
        operator = subprocess.Popen(
            [sys.executable, "-m", "opsledger", "run"],
            env={**os.environ, **env.env(), "OPSLEDGER_MONTHLY_REVIEW": "false"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(operator.wait, 30)
        stack.callback(operator.terminate)
        health = f"http://127.0.0.1:{env.ports()['operator-health']}/healthz"
        _until(lambda: _ok(health), "the operator", timeout=120)
        api = api_client(str(env.kubeconfig))
        stack.callback(api.close)
        work = folder / "review"
        subprocess.run(["git", "clone", "--quiet", str(env.cmdb_remote), str(work)], check=True)
        cluster = Cluster(env, api, work)
        for name, measure in (
            ("floor", _floor),
            ("alert_to_incident", _alerts),
            ("window_to_in_progress", _windows),
            ("merge_to_approved", _merges),
        ):
            result[name] = _figures(measure(cluster, trials))
            print(f"{name}: {result[name]}", file=sys.stderr, flush=True)
    return result


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


TARGETS = {
    "alert_to_incident": "≤ 1 s",
    "merge_to_approved": "≤ 5 s",
    "window_to_in_progress": "≤ 2 s + the change interval (10 s)",
}


def main(argv: list[str]) -> int:
    trials = int(argv[0]) if argv else 20
    folder = Path(tempfile.mkdtemp(prefix="reaction-"))
    try:
        result = run(trials, Toolbox.locate(), folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    floor = result["floor"]["p50_s"]
    print(f"{trials} trials each; floor (a write seen by the same polling): {floor * 1000:.0f} ms")
    print(f"{'reaction':<24}{'p50 s':>8}{'p99 s':>8}{'max s':>8}  target")
    for name, target in TARGETS.items():
        r = result[name]
        print(f"{name:<24}{r['p50_s']:>8}{r['p99_s']:>8}{r['max_s']:>8}  {target}")
    out = ROOT / "bench" / "results" / "reaction.json"
    out.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d"), **result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
