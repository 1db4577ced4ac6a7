"""`opsledger dev` itself: status, env, idempotent up, the CMDB remote, Alertmanager, down."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.paths import Toolbox
from tests.support import opsledger


def test_status_shows_every_component_healthy(devenv: DevEnvironment) -> None:
    result = opsledger("dev", "--dir", str(devenv.dir), "status")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["COMPONENT", "PORT", "PID", "HEALTH"]
    names = {line.split()[0]: line.split()[3] for line in lines[1:]}
    assert names == dict.fromkeys(
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
            "prometheus",
            "alertmanager",
        ],
        "healthy",
    )


def test_env_points_kubectl_at_the_environment(devenv: DevEnvironment) -> None:
    exports = opsledger("dev", "--dir", str(devenv.dir), "env").stdout
    assert f"export KUBECONFIG={devenv.kubeconfig}" in exports
    for var in (
        "OPSLEDGER_CLUSTER",
        "OPSLEDGER_CMDB_URL",
        "OPSLEDGER_CMDB_BRANCH",
        "OPSLEDGER_PROMETHEUS_URL",
        "OPSLEDGER_ALERTMANAGER_URL",
    ):
        assert f"export {var}=" in exports
    shell = subprocess.run(
        ["bash", "-c", f"{exports}\ncommand -v kubectl; kubectl get nodes -o name"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    which, *nodes = shell.stdout.split()
    assert which == str(devenv.tools.binary("kubectl"))
    assert len(nodes) == 3


def test_up_twice_is_harmless(devenv: DevEnvironment) -> None:
    before = {row.name: row.pid for row in devenv.status()}
    result = opsledger("dev", "--dir", str(devenv.dir), "up")
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stderr
    assert {row.name: row.pid for row in devenv.status()} == before


def test_the_cmdb_remote_starts_from_the_template(devenv: DevEnvironment) -> None:
    files = subprocess.run(
        ["git", "--git-dir", str(devenv.cmdb_remote), "ls-tree", "-r", "--name-only", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {"README.md", "CODEOWNERS", ".github/PULL_REQUEST_TEMPLATE.md"} <= set(files)


def test_alertmanager_routes_to_the_operator(devenv: DevEnvironment) -> None:
    with urllib.request.urlopen(f"{devenv.url('alertmanager')}/api/v2/status", timeout=5) as r:
        status = json.load(r)
    receiver = f"127.0.0.1:{devenv.ports()['operator-receiver']}/alertmanager"
    assert receiver in status["config"]["original"]


def test_down_stops_exactly_the_processes_it_started(
    devenv: DevEnvironment, tmp_path: Path
) -> None:
    other = DevEnvironment(tmp_path / "second", Toolbox.locate(), cluster="second", nodes=1)
    other.up()
    pids = [row.pid for row in other.status()]
    assert all(pids)
    stopped = other.down()
    assert len(stopped) == 7
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids if pid)
    assert all(row.healthy for row in devenv.status())  # the session's environment is untouched


def test_prometheus_evaluates_the_rules_the_project_writes(devenv: DevEnvironment) -> None:
    rules = devenv.rules_dir / "opsledger-operator.yml"
    check = subprocess.run(
        [str(devenv.tools.binary("promtool")), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 6 rules found" in check.stdout
    with urllib.request.urlopen(f"{devenv.url('prometheus')}/api/v1/rules", timeout=5) as r:
        groups = json.load(r)["data"]["groups"]
    [group] = [g for g in groups if g["name"] == "opsledger-operator"]
    assert {rule["name"] for rule in group["rules"]} == {
        "opsledger:objects_not_ready:count",
        "OpsLedgerOperatorDown",
        "OpsLedgerErrorBudgetBurnPage",
        "OpsLedgerErrorBudgetBurnTicket",
        "OpsLedgerObjectNotReady",
        "OpsLedgerChangeFreeze",
    }
