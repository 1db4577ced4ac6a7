"""`kubectl itsm` through the project's own kubectl (which finds the plugin on PATH), against the
real API server and operator: status, explain, and an incident opened, acknowledged, resolved,
and refused in the API server's words where its rules say no."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.paths import Toolbox, cache_dir, versions
from tests.support import SELF_MEASURED_OBJECTIVE, Kubectl, OperatorProcess, itsm, wait_for

NS = "itsm"
KREW_DIR = Path(__file__).resolve().parents[2] / "plugins" / "krew"
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
  maintenanceWindows: [{{schedule: "0 3 * * 0", duration: 1h}}]
{SELF_MEASURED_OBJECTIVE}---
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: resize-db, namespace: {NS}}}
spec:
  type: normal
  summary: Give the database more memory
  service: shop
"""


def test_status_explain_and_an_incidents_life_from_kubectl(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("apply", "-f", "-", input=SETUP)
    wait_for(
        lambda: kubectl.json("get", "change", "resize-db", "-n", NS).get("status", {}).get("phase"),
        what="the change reconciled",
    )

    opened = itsm(
        devenv, "incident", "open", "Orders are slow", "--service", "shop",
        "--impact", "high", "--urgency", "medium", "--name", "orders-slow", "-n", NS,
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert "incident.opsledger.io/orders-slow opened in itsm" in opened.stdout
    wait_for(
        lambda: (
            kubectl.json("get", "incident", "orders-slow", "-n", NS)
            .get("status", {})
            .get("priority")
        ),
        what="the incident's priority",
    )

    status = itsm(devenv, "status", "-n", NS)
    assert status.returncode == 0, status.stderr
    [row] = [line for line in status.stdout.splitlines() if line.startswith(NS)]
    assert "shop" in row
    assert "availability" in row
    assert "P2: 1" in row  # high impact, medium urgency

    explained = itsm(devenv, "explain", "resize-db", "-n", NS)
    assert explained.returncode == 0, explained.stderr
    lines = explained.stdout.splitlines()
    assert lines[0] == f"Change {NS}/resize-db"
    [approval] = [line for line in lines if line.strip().startswith("approval")]
    assert "BLOCKED" in approval or "WAITING" in approval, explained.stdout
    assert "waiting for: " in lines[-1]
    assert "approval" in lines[-1]

    acked = itsm(devenv, "incident", "ack", "orders-slow", "-n", NS)
    assert acked.returncode == 0, acked.stderr
    assert kubectl.json("get", "incident", "orders-slow", "-n", NS)["spec"]["state"] == (
        "Acknowledged"
    )
    resolved = itsm(devenv, "incident", "resolve", "orders-slow", "-n", NS,
                    "--resolution", "index added to orders.created_at")  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr
    done = kubectl.json("get", "incident", "orders-slow", "-n", NS)["spec"]
    assert (done["state"], done["resolution"]) == ("Resolved", "index added to orders.created_at")

    # Refused where the API server's rules say no, in its words; a missing one is named.
    kubectl("patch", "incident", "orders-slow", "-n", NS, "--type=merge",
            "-p", '{"spec":{"state":"Closed"}}')  # fmt: skip
    reopened = itsm(devenv, "incident", "ack", "orders-slow", "-n", NS)
    assert reopened.returncode == 1
    assert "refused:" in reopened.stderr
    assert "a Closed incident cannot be reopened" in reopened.stderr
    missing = itsm(devenv, "explain", "no-such-change", "-n", NS)
    assert missing.returncode == 1
    assert "no Change no-such-change in namespace itsm" in missing.stderr


def test_krew_installs_the_plugin_from_the_repositorys_manifest(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    """The real krew (built from its module) installs kubectl-itsm from plugins/krew/itsm.yaml
    and the archive built from the repository, checking its sha256; kubectl then finds the
    installed plugin and it answers from the real API server."""
    archive = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, str(KREW_DIR / "archive.py"), "--out", str(archive)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    path, sha = built.stdout.split()
    checked = subprocess.run(
        [sys.executable, str(KREW_DIR / "archive.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr  # the manifest names this very archive
    assert sha in (KREW_DIR / "itsm.yaml").read_text()
    krew = cache_dir() / "bin" / f"krew-{versions()['KREW_VERSION']}" / "kubectl-krew"
    root = tmp_path / "krew"
    env = {**os.environ, "KREW_ROOT": str(root), "KUBECONFIG": str(devenv.kubeconfig)}
    installed = subprocess.run(
        [str(krew), "install", f"--manifest={KREW_DIR / 'itsm.yaml'}", f"--archive={path}"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    assert "Installed plugin: itsm" in installed.stderr + installed.stdout

    kubectl_bin = Toolbox.locate().binary("kubectl")
    shown = subprocess.run(
        [str(kubectl_bin), "plugin", "list"],
        capture_output=True, text=True, check=False,
        env={**env, "PATH": f"{root / 'bin'}:/usr/bin:/bin"},
    )  # fmt: skip
    assert str(root / "bin" / "kubectl-itsm") in shown.stdout

    def run(python: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(kubectl_bin), "itsm", "status", "-n", NS],
            capture_output=True,
            text=True,
            env={**env, "PATH": f"{root / 'bin'}:/usr/bin:/bin", "OPSLEDGER_PYTHON": python},
            check=False,
        )

    answered = run(sys.executable)
    assert answered.returncode == 0, answered.stderr
    assert "shop" in answered.stdout
    lost = run("/nonexistent/python")  # and python3 on that PATH has no opsledger
    assert lost.returncode == 127
    assert "kubectl itsm needs OpsLedger's Python package" in lost.stderr
