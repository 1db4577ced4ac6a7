"""Session fixtures: the real local environment, started once per run by the project's own code.

Nothing here is a fake: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok,
Prometheus, Alertmanager and git run as processes on loopback, exactly as `opsledger dev up`
starts them. Tests that need none of it (tests/unit) never trigger these fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.paths import Toolbox
from tests.support import Kubectl, OperatorProcess

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def devenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevEnvironment]:
    env = DevEnvironment(tmp_path_factory.mktemp("devenv"), Toolbox.locate(), cluster="test")
    try:
        env.up()
    except Exception:
        env.down()
        raise
    yield env
    env.down()


@pytest.fixture(scope="session")
def kubectl(devenv: DevEnvironment) -> Kubectl:
    return Kubectl(devenv)


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    """The project's CRDs, installed and established."""
    kubectl("apply", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))


@pytest.fixture(scope="module")
def operator(
    devenv: DevEnvironment, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(devenv, tmp_path_factory.mktemp("operator") / "operator.log").start()
    yield proc
    proc.stop()
