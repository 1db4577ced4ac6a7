"""The helm built from tools/ installs a chart into the real API server."""

from __future__ import annotations

import subprocess
from pathlib import Path

from opsledger.devenv.environment import DevEnvironment
from tests.support import Kubectl


def _helm(devenv: DevEnvironment, *args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(devenv.tools.binary("helm")), f"--kubeconfig={devenv.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_helm_installs_and_uninstalls_a_chart(
    devenv: DevEnvironment, kubectl: Kubectl, tmp_path: Path
) -> None:
    assert _helm(devenv, "version", "--short").startswith("v4.3.1")
    _helm(devenv, "create", "demo", cwd=tmp_path)
    _helm(
        devenv,
        "install",
        "demo",
        str(tmp_path / "demo"),
        "-n",
        "helm-smoke",
        "--create-namespace",
        "--wait",
        "--timeout",
        "2m",
    )
    deployment = kubectl.json("get", "deployment", "demo", "-n", "helm-smoke")
    assert deployment["status"]["readyReplicas"] == 1
    _helm(devenv, "uninstall", "demo", "-n", "helm-smoke", "--wait")
    assert kubectl.run("get", "deployment", "demo", "-n", "helm-smoke", check=False).returncode != 0
