"""CMDB sync at scale: N ConfigurationItems into the Git CMDB (a benchmark, not a test).

For each N, in one real local environment (the project's own `opsledger dev` components):
N items are created in the API server (half with a Deployment source, half declared only), then
`opsledger run` is started against the environment's bare Git remote. It measures the time until
every record is on the remote, the commits made, the operator's CPU seconds and its peak and
settled RSS; then a restart with nothing changed (time until idle, commits made: should be 0) and
the API server's write requests per minute while nothing changes.

Floors, measured in the same run on the same machine:
  (a) a trivial Kopf operator (bench/trivial_operator.py: one create handler patching status)
      on N other items of the same CRD;
  (b) the same records written to a fresh repository by `git fast-import` in one commit.

    .venv/bin/python bench/cmdb_sync.py [N ...]       # default: 1000 10000
    OPSLEDGER_BENCH_TIMEOUT=600                          # seconds to wait for one sync

Prints a table and writes bench/results/cmdb_sync.json.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from kubernetes import client

from opsledger.adapters.kube import api_client
from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.paths import Toolbox

ROOT = Path(__file__).resolve().parents[1]
ITEMS, FLOOR = "bench-items", "bench-floor"
CLUSTER = "bench"
TIMEOUT = float(os.environ.get("OPSLEDGER_BENCH_TIMEOUT", "600"))
SETTINGS = {
    "OPSLEDGER_NAMESPACES": ITEMS,
    "OPSLEDGER_MONTHLY_REVIEW": "false",
    "OPSLEDGER_WEBHOOK_PORT": "",
    "OPSLEDGER_DISCOVERY_KINDS": "",
}


# -- the processes measured ----------------------------------------------------------------


class Proc:
    """A child process whose CPU time and resident memory are read from /proc."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mb(self, field: str) -> float:
        """VmRSS (now) or VmHWM (peak), in MB."""
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def wait(check: Callable[[], bool], timeout: float, proc: Proc | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"process exited: see {proc.log}")
        if check():
            return True
        time.sleep(1)
    return False


# -- the environment -------------------------------------------------------------------------


def create_items(api: client.ApiClient, namespace: str, count: int, *, sources: bool) -> None:
    """`count` items in `namespace`; with `sources`, every other one follows a Deployment."""
    core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    core.create_namespace({"metadata": {"name": namespace}})

    def one(i: int) -> None:
        name = f"item-{i:05d}"
        spec: dict[str, Any] = {"class": "Workload", "service": "bench", "owner": "team-bench"}
        if sources and i % 2 == 0:
            labels = {"app": name}
            apps.create_namespaced_deployment(
                namespace,
                {
                    "metadata": {"name": name, "labels": labels},
                    "spec": {
                        "replicas": 0,
                        "selector": {"matchLabels": labels},
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {"containers": [{"name": "app", "image": "bench:1"}]},
                        },
                    },
                },
            )
            spec["source"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        custom.create_namespaced_custom_object(
            "opsledger.io",
            "v1alpha1",
            namespace,
            "configurationitems",
            {
                "apiVersion": "opsledger.io/v1alpha1",
                "kind": "ConfigurationItem",
                "metadata": {"name": name},
                "spec": spec,
            },
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def deployments_settled(api: client.ApiClient, namespace: str) -> bool:
    """Whether the controllers have caught up with every Deployment (its status observes its
    generation): until then the cluster's own status writes each wake the operator too."""
    apps = client.AppsV1Api(api)
    token = None
    while True:
        page = apps.list_namespaced_deployment(namespace, limit=2000, _continue=token)
        for d in page.items:
            status = d.status
            if status is None or status.observed_generation != d.metadata.generation:
                return False
        token = page.metadata._continue
        if not token:
            return True


def count_with_status(api: client.ApiClient, namespace: str, field: str) -> int:
    """How many items in `namespace` have `field` in their status (0 while the API server
    cannot page through them, e.g. its watch cache lags behind a continue token: ask again)."""
    try:
        return _count_with_status(api, namespace, field)
    except client.ApiException:
        return 0


def _count_with_status(api: client.ApiClient, namespace: str, field: str) -> int:
    custom = client.CustomObjectsApi(api)
    found, token = 0, None
    while True:
        page = custom.list_namespaced_custom_object(
            "opsledger.io",
            "v1alpha1",
            namespace,
            "configurationitems",
            limit=2000,
            _continue=token,
        )
        found += sum(1 for o in page["items"] if field in (o.get("status") or {}))
        token = page["metadata"].get("continue")
        if not token:
            return found


def git(remote: Path, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={remote}", *args], capture_output=True, text=True, check=True
    ).stdout


def records_on_remote(remote: Path) -> int:
    try:
        listing = git(
            remote,
            "ls-tree",
            "-r",
            "--name-only",
            "main",
            f"clusters/{CLUSTER}/{ITEMS}/configurationitems/",
        )
    except subprocess.CalledProcessError:
        return 0
    return len(listing.splitlines())


def commits_on_remote(remote: Path) -> int:
    return int(git(remote, "rev-list", "--count", "main").strip())


def fast_import_floor(remote: Path, folder: Path) -> float:
    """Seconds `git fast-import` takes to write the remote's records to a new repository."""
    prefix = f"clusters/{CLUSTER}/{ITEMS}/configurationitems/"
    paths = git(remote, "ls-tree", "-r", "--name-only", "main", prefix).splitlines()
    blobs = subprocess.run(
        ["git", f"--git-dir={remote}", "cat-file", "--batch"],
        input="".join(f"main:{p}\n" for p in paths).encode(),
        capture_output=True,
        check=True,
    ).stdout
    contents, at = [], 0
    for _ in paths:  # "<sha> blob <size>\n<data>\n" each
        header_end = blobs.index(b"\n", at)
        size = int(blobs[at:header_end].split()[2])
        contents.append(blobs[header_end + 1 : header_end + 1 + size])
        at = header_end + 1 + size + 1
    stream = bytearray(b"commit refs/heads/main\ncommitter B <b@b> 0 +0000\ndata 7\nrecords\n")
    for path, data in zip(paths, contents, strict=True):
        stream += f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n"
    fresh = folder / "floor.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(fresh)], check=True)
    started = time.monotonic()
    subprocess.run(
        ["git", f"--git-dir={fresh}", "fast-import", "--quiet"], input=bytes(stream), check=True
    )
    return time.monotonic() - started


def operator_metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return float("nan")
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
    )


def api_writes(env: DevEnvironment) -> dict[str, float]:
    """Write requests (POST, PUT, PATCH, DELETE) the API server has served, by its own count,
    per resource (and subresource)."""
    text = env.kubectl("get", "--raw", "/metrics")
    writes: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{") and re.search(
            r'verb="(POST|PUT|PATCH|DELETE)"', line
        ):
            resource = re.search(r'resource="([^"]*)"', line)
            sub = re.search(r'subresource="([^"]*)"', line)
            key = (resource.group(1) if resource else "?") + (
                f"/{sub.group(1)}" if sub and sub.group(1) else ""
            )
            writes[key] = writes.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return writes


def git_seconds(log: Path) -> float:
    """The operator's time in git (commit and push), from its log lines."""
    return sum(
        float(m.group(1))
        for m in re.finditer(r"CMDB: committed .* in ([0-9.]+)s", log.read_text(errors="replace"))
    )


# -- one size ----------------------------------------------------------------------------------


def run(count: int, tools: Toolbox, folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"items": count}
    with ExitStack() as stack:
        env = DevEnvironment(folder / "env", tools, cluster=CLUSTER)
        stack.callback(env.down)
        env.up()
        env.kubectl("apply", "-f", str(ROOT / "crds"))
        env.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds")
        )
        api = api_client(str(env.kubeconfig))
        stack.callback(api.close)
        base_env = {**os.environ, **env.env()}

        # floor (a): the trivial Kopf operator on N other items of the same CRD
        create_items(api, FLOOR, count, sources=False)
        trivial = Proc(
            [
                sys.executable,
                "-m",
                "kopf",
                "run",
                "--standalone",
                "--namespace",
                FLOOR,
                str(ROOT / "bench" / "trivial_operator.py"),
            ],
            base_env,
            folder / "trivial.log",
        )
        stack.callback(trivial.stop)
        done = wait(lambda: count_with_status(api, FLOOR, "dependents") >= count, TIMEOUT, trivial)
        elapsed = time.monotonic() - trivial.started
        result["floor"] = {
            "seconds": round(elapsed, 1) if done else None,
            "per_second": round(count / elapsed, 1) if done else None,
            "cpu_seconds": round(trivial.cpu_seconds(), 1),
            "peak_rss_mb": round(trivial.memory_mb("VmHWM")),
        }
        trivial.stop()

        # OpsLedger on N items of its own
        create_items(api, ITEMS, count, sources=True)
        wait(lambda: deployments_settled(api, ITEMS), TIMEOUT)
        before = commits_on_remote(env.cmdb_remote)
        log = folder / "operator.log"
        metrics_port = env.ports()["operator-metrics"]
        settings = {**base_env, **SETTINGS}
        operator = Proc([sys.executable, "-m", "opsledger", "run"], settings, log)
        stack.callback(operator.stop)
        done = wait(lambda: records_on_remote(env.cmdb_remote) >= count, TIMEOUT, operator)
        elapsed = time.monotonic() - operator.started
        peak = operator.memory_mb("VmHWM")
        time.sleep(20)
        result["opsledger"] = {
            "seconds": round(elapsed, 1) if done else None,
            "per_second": round(count / elapsed, 1) if done else None,
            "records": records_on_remote(env.cmdb_remote),
            "commits": commits_on_remote(env.cmdb_remote) - before,
            "cpu_seconds": round(operator.cpu_seconds(), 1),
            "git_seconds": round(git_seconds(log), 1),
            "peak_rss_mb": round(peak),
            "settled_rss_mb": round(operator.memory_mb("VmRSS")),
        }
        if not done:
            return result
        result["fast_import_seconds"] = round(fast_import_floor(env.cmdb_remote, folder), 2)

        # steady state: API server writes per minute with nothing changing
        writes = api_writes(env)
        time.sleep(60)
        after = api_writes(env)
        per_resource = {k: round(v - writes.get(k, 0.0)) for k, v in after.items()}
        result["steady_writes_per_minute"] = sum(per_resource.values())
        result["steady_writes_by_resource"] = {k: v for k, v in per_resource.items() if v}

        # a restart with nothing changed: time until idle, and no commit
        operator.stop()
        before = commits_on_remote(env.cmdb_remote)
        operator = Proc([sys.executable, "-m", "opsledger", "run"], settings, log)
        stack.callback(operator.stop)
        last, still_since = -1.0, time.monotonic()

        def idle() -> bool:
            nonlocal last, still_since
            now = operator_metric(metrics_port, "opsledger_reconciliations_total")
            if now != last:
                last, still_since = now, time.monotonic()
            return not math.isnan(now) and now >= count and time.monotonic() - still_since >= 10

        settled = wait(idle, TIMEOUT, operator)
        result["restart"] = {
            "seconds_to_idle": round(still_since - operator.started, 1) if settled else None,
            "commits": commits_on_remote(env.cmdb_remote) - before,
        }
    return result


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "-"


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [1000, 10000]
    tools = Toolbox.locate()
    results = []
    for count in sizes:
        folder = Path(tempfile.mkdtemp(prefix=f"cmdb-sync-{count}-"))
        try:
            results.append(run(count, tools, folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(json.dumps(results[-1]), flush=True)
    print()
    rows = [
        {
            "items": r["items"],
            "trivial/s": r["floor"]["per_second"],
            "opsledger/s": r["opsledger"]["per_second"] or "stalled",
            "ratio": ratio(r["opsledger"]["per_second"], r["floor"]["per_second"]),
            "commits": r["opsledger"]["commits"],
            "git s": r["opsledger"]["git_seconds"],
            "fast-import s": r.get("fast_import_seconds"),
            "git/floor": ratio(r["opsledger"]["git_seconds"], r.get("fast_import_seconds")),
            "peak MB": r["opsledger"]["peak_rss_mb"],
            "trivial MB": r["floor"]["peak_rss_mb"],
            "settled MB": r["opsledger"]["settled_rss_mb"],
            "restart s": (r.get("restart") or {}).get("seconds_to_idle"),
            "restart commits": (r.get("restart") or {}).get("commits"),
            "writes/min": r.get("steady_writes_per_minute"),
        }
        for r in results
    ]
    for row in rows[:1]:
        print("  ".join(f"{k:>{max(len(k), 8)}}" for k in row))
    for row in rows:
        cells = ("-" if v is None else str(v) for v in row.values())
        print("  ".join(f"{c:>{max(len(k), 8)}}" for k, c in zip(row, cells, strict=True)))
    out = ROOT / "bench" / "results" / "cmdb_sync.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"measured": time.strftime("%Y-%m-%d"), "results": results}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
