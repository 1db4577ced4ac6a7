"""Helpers for tests that drive the real environment: kubectl, polling, the operator process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.paths import Toolbox
from opsledger.devenv.processes import stop_child


class Kubectl:
    """The project's kubectl, pointed at the test environment."""

    def __init__(self, env: DevEnvironment) -> None:
        self.env = env

    def watch(self, *args: str) -> subprocess.Popen[str]:
        """`kubectl get ... --watch-only -o json` in the background: stop it, then read every
        version it saw with `versions`."""
        return subprocess.Popen(
            [
                str(self.env.tools.binary("kubectl")),
                f"--kubeconfig={self.env.kubeconfig}",
                "get",
                *args,
                "--watch-only",
                "-o",
                "json",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def versions(watch: subprocess.Popen[str]) -> list[dict[str, Any]]:
        """The objects a `watch` printed, in order (it is stopped first)."""
        stop_child(watch, grace=5)
        text = watch.stdout.read() if watch.stdout else ""
        decoder = json.JSONDecoder()
        found: list[dict[str, Any]] = []
        rest = text.lstrip()
        while rest:
            obj, end = decoder.raw_decode(rest)
            found.append(obj)
            rest = rest[end:].lstrip()
        return found

    def run(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.env.tools.binary("kubectl")), f"--kubeconfig={self.env.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def __call__(self, *args: str, input: str | None = None) -> str:
        return self.run(*args, input=input).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))


def opsledger(*args: str) -> subprocess.CompletedProcess[str]:
    """The `opsledger` command line, as a user runs it; the caller reads its exit code."""
    return subprocess.run(
        [sys.executable, "-m", "opsledger", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def wait_for(check: Any, timeout: float = 60.0, interval: float = 0.5, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: last {last!r}")


def wait_for_event(
    kubectl: Kubectl, namespace: str, name: str, reason: str, timeout: float = 30.0
) -> dict[str, Any]:
    """The first Event with `reason` about object `name`. Kopf posts Events from a queue after
    the status patch, so a condition can be visible before its Event is: always wait."""

    def found() -> dict[str, Any] | None:
        events = kubectl.json(
            "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
        )["items"]
        return next((e for e in events if e["reason"] == reason), None)

    event: dict[str, Any] = wait_for(found, timeout=timeout, what=f"a {reason} Event on {name}")
    return event


# Shorter waits than production defaults, so tests see retries within seconds.
TEST_SETTINGS = {
    "OPSLEDGER_CMDB_DEBOUNCE": "0.5",
    "OPSLEDGER_CMDB_RETRY_INTERVAL": "2",
    "OPSLEDGER_IMPACT_INTERVAL": "2",
    "OPSLEDGER_INCIDENT_INTERVAL": "1",
    "OPSLEDGER_REQUEST_INTERVAL": "1",
    "OPSLEDGER_CATALOG_INTERVAL": "2",
    "OPSLEDGER_CHANGE_INTERVAL": "1",
    "OPSLEDGER_KPI_INTERVAL": "2",
    "OPSLEDGER_HEALTH_INTERVAL": "2",
    # The monthly review would commit last month's report at the first start: tests that count
    # commits must not see it. test_report turns it on.
    "OPSLEDGER_MONTHLY_REVIEW": "false",
    "OPSLEDGER_DISCOVERY_KINDS": "Deployment,StatefulSet",
    "OPSLEDGER_DISCOVERY_SELECTOR": "opsledger.io/discover=true",
    # The admission webhook is off unless a test module turns it on (WEBHOOK_SETTINGS): with
    # failurePolicy Fail it would otherwise guard every module's Deployments.
    "OPSLEDGER_WEBHOOK_PORT": "",
}


def wait_guarded(kubectl: Kubectl, namespace: str, deployment: str) -> None:
    """Wait until the operator has labelled a protected item's Deployment and pointed the
    subresource guard at its namespace (both follow the item within seconds)."""

    def labelled() -> bool:
        labels = (
            kubectl.json("get", "deployment", deployment, "-n", namespace)["metadata"].get("labels")
            or {}
        )
        return labels.get("opsledger.io/protected") == "true"

    def listened() -> bool:
        config = kubectl.json("get", "validatingwebhookconfiguration", "opsledger")
        return any(
            f"'{namespace}'" in c["expression"]
            for w in config["webhooks"]
            for c in w.get("matchConditions") or []
            if c["name"] == "namespaces-with-protected-objects"
        )

    wait_for(labelled, what=f"the guard's label on deployment {namespace}/{deployment}")
    wait_for(listened, what=f"the subresource guard listening to {namespace}")


# An availability objective measured on what the local Prometheus always has, its own HTTP API's
# requests: health is known within seconds, so changes gated on it can start. Indented for a
# ServiceLevel's spec.
SELF_MEASURED_OBJECTIVE = """  objectives:
  - name: availability
    objective: 99.9
    window: 30d
    sli:
      events:
        errorQuery: sum(rate(prometheus_http_requests_total{code=~"5.."}[{{.window}}]))
        totalQuery: sum(rate(prometheus_http_requests_total[{{.window}}]))
"""


def wait_for_webhooks(kubectl: Kubectl) -> None:
    """Until the operator has registered its validating and mutating webhook configurations."""
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        wait_for(
            lambda kind=kind: kubectl.run("get", kind, "opsledger", check=False).returncode == 0,
            what=f"the {kind} registered",
        )


def webhook_settings(env: DevEnvironment) -> dict[str, str]:
    """The settings that turn the webhook on, as `make run` has them."""
    return {"OPSLEDGER_WEBHOOK_PORT": env.env()["OPSLEDGER_WEBHOOK_PORT"]}


class OperatorProcess:
    """`opsledger run` as a real subprocess against the test environment."""

    def __init__(self, env: DevEnvironment, log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str, env: dict[str, str] | None = None) -> OperatorProcess:
        self.overrides = {**getattr(self, "overrides", {}), **(env or {})}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "opsledger", "run", *extra],
                env={**os.environ, **self.env.env(), **TEST_SETTINGS, **self.overrides},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        port = int(self.overrides.get("OPSLEDGER_HEALTH_PORT", self.env.ports()["operator-health"]))
        try:
            wait_for(
                lambda: self._healthy(port), timeout=60, what=f"operator /healthz ({self.log})"
            )
        except AssertionError:
            self.stop()  # a half-started operator left running would act in the next modules
            raise
        return self

    def _healthy(self, port: int) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"operator exited with {self.proc.returncode}:\n{self.output()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM (the operator removes its webhook configurations as it stops); a process that
        was killed, or had to be, leaves them registered with `failurePolicy: Fail`, so they are
        removed here: the next module must not be guarded by a dead operator."""
        if self.proc:
            stop_child(self.proc)
            if self.proc.returncode != 0 and self.overrides.get("OPSLEDGER_WEBHOOK_PORT"):
                kubectl = Kubectl(self.env)
                for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
                    kubectl.run("delete", kind, "opsledger", "--ignore-not-found", check=False)

    def kill(self) -> None:
        """SIGKILL: nothing is cleaned up (the webhook configuration stays registered)."""
        if self.proc:
            self.proc.kill()
            self.proc.wait(timeout=30)


def git(*args: str, cwd: Path | None = None, who: tuple[str, str] | None = None) -> str:
    env = dict(os.environ)
    if who:
        env.update(
            GIT_AUTHOR_NAME=who[0],
            GIT_AUTHOR_EMAIL=who[1],
            GIT_COMMITTER_NAME=who[0],
            GIT_COMMITTER_EMAIL=who[1],
        )
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout


def itsm(devenv: DevEnvironment, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl itsm …` as a person runs it: the project's kubectl finds kubectl-itsm on PATH."""
    kubectl = Toolbox.locate().binary("kubectl")
    plugin_dir = Path(sys.executable).parent  # the virtualenv's bin/, where pip put it
    env = {
        **os.environ,
        "PATH": f"{plugin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(devenv.kubeconfig),
    }
    return subprocess.run(
        [str(kubectl), "itsm", *args], capture_output=True, text=True, env=env, check=False
    )


def push_to_cmdb(
    env: DevEnvironment,
    work: Path,
    files: dict[str, str],
    message: str,
    who: tuple[str, str] = ("Dana Manager", "dana@example.com"),
) -> None:
    """What a change manager does: commit `files` (path → text) to the CMDB's main branch in a
    clone at `work` and push, pulling again when the operator pushed first."""
    git("clone", "--quiet", str(env.cmdb_remote), str(work))
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", message, cwd=work, who=who)
    for _ in range(5):
        if subprocess.run(["git", "push", "--quiet"], cwd=work, check=False).returncode == 0:
            return
        git("pull", "--quiet", "--rebase", cwd=work, who=who)
    raise AssertionError(f"could not push {', '.join(files)} to the CMDB")


def approve_proposal(
    devenv: DevEnvironment,
    tmp_path: Path,
    branch: str,
    who: tuple[str, str],
    how: str = "merge",
    *,
    remote: Path | None = None,
    signing_key: Path | None = None,
) -> None:
    """What a reviewer does on a forge: merge (or squash) the proposal into main and push;
    signed with the SSH key `signing_key` where given (git's `-S` with gpg.format=ssh)."""
    origin = str(remote or devenv.cmdb_remote)
    work = tmp_path / f"review-{time.monotonic_ns()}"
    git("clone", "--quiet", origin, str(work))
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={signing_key}"] if signing_key else []
    flag = ["-S"] if signing_key else []
    for _ in range(5):  # the operator pushes too: a lost race is merged again
        git("fetch", "--quiet", "origin", cwd=work)
        git("reset", "--quiet", "--hard", "origin/main", cwd=work)
        if how == "squash":
            git("merge", "--squash", f"origin/{branch}", cwd=work, who=who)
            git(
                *sign,
                "commit",
                *flag,
                "--quiet",
                "-m",
                f"Approve {branch} (squash)",
                cwd=work,
                who=who,
            )
        else:
            git(
                *sign, "merge", *flag, "--no-ff", "-m", f"Merge {branch}", f"origin/{branch}",
                cwd=work, who=who,
            )  # fmt: skip
        push = subprocess.run(
            ["git", "push", "--quiet", "origin", "HEAD:main"],
            cwd=work,
            capture_output=True,
            check=False,
        )
        if push.returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"could not push the approval of {branch}")


def availability_slo(namespace: str = "shop", objective: float = 99.9) -> str:
    """The `shop` ServiceLevel with one Sloth-style availability objective over 30d: the 5xx
    share of http_requests_total{service="shop"}."""
    return f"""
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: shop, namespace: {namespace}}}
spec:
  service: shop
  objectives:
  - name: availability
    objective: {objective:g}
    window: 30d
    sli:
      events:
        errorQuery: sum(rate(http_requests_total{{service="shop",code=~"5.."}}[{{{{.window}}}}]))
        totalQuery: sum(rate(http_requests_total{{service="shop"}}[{{{{.window}}}}]))
"""


def shop(
    namespace: str,
    *,
    replicas: int = 2,
    window: str = '{schedule: "* * * * *", duration: 2m}',
    freezes: str = "",
    item: str = "",
) -> str:
    """The manifests most change tests start from: a namespace, the `web` Deployment, the `shop`
    ServiceLevel with one maintenance window, and the `web` item following the Deployment (its
    extra spec lines in `item`, e.g. "protected: true")."""
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {namespace}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {namespace}, labels: {{app: web}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: app
        image: web:1.0
        env: [{{name: MODE, value: blue}}]
---
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: shop, namespace: {namespace}}}
spec:
  service: shop
  maintenanceWindows: [{window}]{freezes}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: web, namespace: {namespace}}}
spec:
  service: shop
  source: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  {item}
"""


def proposed(kubectl: Kubectl, namespace: str, name: str, timeout: float = 60.0) -> str:
    """Wait until the operator pushed the change's proposal; its commit."""

    def commit() -> str | None:
        change = kubectl.json("get", "change", name, "-n", namespace)
        return (change.get("status", {}).get("approval") or {}).get("proposalCommit")

    result: str = wait_for(commit, timeout=timeout, what=f"the proposal of {namespace}/{name}")
    return result


def remote_text(env: DevEnvironment, path: str, ref: str = "main") -> str | None:
    """The file at `path` on `ref` of the CMDB remote, or None when it is not there."""
    result = subprocess.run(
        ["git", "--git-dir", str(env.cmdb_remote), "show", f"{ref}:{path}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout if result.returncode == 0 else None


def remote_record(env: DevEnvironment, path: str, ref: str = "main") -> Any:
    """The YAML document at `path` on `ref` of the CMDB remote, or None when it is not there."""
    text = remote_text(env, path, ref)
    return None if text is None else yaml.safe_load(text)


def finish_permit(kubectl: Kubectl, namespace: str, name: str) -> None:
    """Wait for a plan-less (permit) change to be in progress, mark it done, and wait until it
    has Completed."""

    def phase() -> str | None:
        obj = kubectl.json("get", "change", name, "-n", namespace)
        found: str | None = obj.get("status", {}).get("phase")
        return found

    wait_for(lambda: phase() == "InProgress", what=f"the permit {name} in progress")
    done = '{"spec":{"done":true}}'
    kubectl("patch", "change", name, "-n", namespace, "--type=merge", "-p", done)
    wait_for(lambda: phase() == "Completed", what=f"the permit {name} completed")
