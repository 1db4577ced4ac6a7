"""Fixtures for the chart's tests: the built helm, rendering, and the CRDs the variants need."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsledger.devenv.environment import DevEnvironment
from tests.support import Kubectl

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "opsledger"
FIXTURES = Path(__file__).parent / "fixtures"
VARIANTS = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))


class Helm:
    """The helm built from tools/, pointed at the test environment."""

    def __init__(self, env: DevEnvironment) -> None:
        self.env = env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.env.tools.binary("helm")), f"--kubeconfig={self.env.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    def __call__(self, *args: str) -> str:
        return self.run(*args).stdout

    def template(
        self,
        *values: str,
        chart: Path = CHART,
        release: str = "ol",
        namespace: str = "opsledger-system",
        sets: Iterable[str] = (),
    ) -> list[dict[str, Any]]:
        """The chart rendered as a list of documents (`values` are files under ci/ or paths)."""
        args = ["template", release, str(chart), "-n", namespace]
        for v in values:
            args += ["-f", str(CHART / "ci" / v) if "/" not in v else v]
        for s in sets:
            args += ["--set", s]
        return [d for d in yaml.safe_load_all(self(*args)) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one rendered document of `kind` (and `name`)."""
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, rendered {len(found)}"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    result: dict[str, Any] = pod["containers"][0]
    return result


def env_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The operator container's plain env (valueFrom entries are left out)."""
    return {e["name"]: e["value"] for e in container(docs)["env"] if "value" in e}


@pytest.fixture(scope="session")
def helm(devenv: DevEnvironment) -> Helm:
    return Helm(devenv)


@pytest.fixture(scope="session")
def variant_crds(kubectl: Kubectl) -> None:
    """Hand-written subsets of the cert-manager and Prometheus Operator CRDs (tests/e2e/fixtures)
    so the API server can validate the variants that render their kinds; the real ones would
    have to be downloaded."""
    for name in ("cert-manager-crds.yaml", "prometheus-operator-crds.yaml"):
        kubectl("apply", "-f", str(FIXTURES / name))
        kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(FIXTURES / name))
