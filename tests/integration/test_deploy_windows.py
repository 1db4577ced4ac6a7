"""The change calendar carried to Argo CD and Flux, against their CRDs as their projects
generate them from their Go API types (devenv/external_crds.py), served by the real API server,
which validates every write the operator makes against their schemas.

The controllers themselves are not run: the pinned releases need Go 1.27 to build, and a Flux
or Argo CD controller reconciling real repositories is beyond this suite's time (README, "Change
calendar"). What is tested is what OpsLedger writes: an AppProject's syncWindows equal to the
ServiceLevel's calendar, and a Kustomization suspended while the calendar holds deployments and
resumed afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.external_crds import external_crd
from tests.support import Kubectl, OperatorProcess, wait_for

NS = "gitops"
REASON = "payroll run"


@pytest.fixture(scope="module")
def operator(
    devenv: DevEnvironment, kubectl: Kubectl, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    for name in ("argocd-appproject", "flux-kustomization"):
        kubectl("apply", "--server-side", "-f", str(external_crd(name)))
    kubectl(
        "wait",
        "--for=condition=Established",
        "crd/appprojects.argoproj.io",
        "crd/kustomizations.kustomize.toolkit.fluxcd.io",
    )
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(devenv, log).start()
    yield proc
    proc.stop()


def _level(blackout: bool) -> str:
    began = datetime.now(UTC) - timedelta(minutes=2)
    freeze_start = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
    rule = (
        f'\n  blackouts: [{{schedule: "{began.minute} {began.hour} * * *", duration: 2h, '
        f'reason: "{REASON}"}}]'
        if blackout
        else ""
    )
    return f"""
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: payroll, namespace: {NS}}}
spec:
  service: payroll
  maintenanceWindows: [{{schedule: "* * * * *", duration: 2m}}]{rule}
  freezes:
  - start: "{freeze_start:%Y-%m-%dT%H:%M:%SZ}"
    end: "{freeze_start + timedelta(hours=36):%Y-%m-%dT%H:%M:%SZ}"
    reason: year-end close
"""


OPTED_IN = f"""
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: payroll
  namespace: {NS}
  labels: {{opsledger.io/calendar: "true"}}
  annotations: {{opsledger.io/calendar-from: {NS}/payroll}}
spec:
  sourceRepos: ["*"]
  destinations: [{{namespace: payroll, server: "https://kubernetes.default.svc"}}]
  syncWindows:
  - kind: allow
    schedule: "0 6 * * *"
    duration: 1h
    applications: [reports]
    description: "team's own"
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: payroll
  namespace: {NS}
  labels: {{opsledger.io/calendar: "true"}}
  annotations: {{opsledger.io/calendar-from: payroll}}
spec:
  interval: 5m
  path: ./deploy
  prune: true
  sourceRef: {{kind: GitRepository, name: payroll}}
"""


def _get(kubectl: Kubectl, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = kubectl.json("get", kind, "payroll", "-n", NS)
    return found


def test_an_app_project_and_a_kustomization_follow_the_calendar(
    kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    kubectl("create", "namespace", NS)
    kubectl("apply", "-f", "-", input=_level(blackout=True))
    kubectl("apply", "-f", "-", input=OPTED_IN)

    def windows() -> list[dict[str, Any]] | None:
        found = _get(kubectl, "appproject")["spec"].get("syncWindows") or []
        return found if len(found) == 4 else None

    synced = wait_for(windows, timeout=60, what="the AppProject's sync windows")
    described = {w["description"]: w for w in synced}
    assert described["team's own"]["applications"] == ["reports"]  # theirs, kept
    allow = described["opsledger: maintenance window of payroll"]
    assert (allow["kind"], allow["schedule"], allow["duration"]) == ("allow", "* * * * *", "2m")
    deny = described[f"opsledger: blackout of payroll: {REASON}"]
    assert (deny["kind"], deny["duration"], deny["timeZone"]) == ("deny", "2h", "UTC")
    freeze = described["opsledger: freeze of payroll: year-end close"]
    assert (freeze["kind"], freeze["duration"]) == ("deny", "2160m")
    assert freeze["schedule"].endswith(" *")  # on the freeze's date, at its start (UTC)

    def suspended() -> dict[str, Any] | None:
        obj = _get(kubectl, "kustomization")
        return obj if obj["spec"].get("suspend") is True else None

    held = wait_for(suspended, timeout=60, what="the Kustomization suspended by the blackout")
    note = held["metadata"]["annotations"]["opsledger.io/suspended-for-freeze"]
    assert "blackout" in note
    assert REASON in note

    # The blackout is lifted: the Kustomization deploys again, the deny window goes.
    kubectl("apply", "-f", "-", input=_level(blackout=False))

    def resumed() -> dict[str, Any] | None:
        obj = _get(kubectl, "kustomization")
        return obj if obj["spec"].get("suspend") is False else None

    back = wait_for(resumed, timeout=60, what="the Kustomization resumed")
    assert "opsledger.io/suspended-for-freeze" not in (back["metadata"].get("annotations") or {})
    wait_for(lambda: windows() is None, timeout=60, what="the blackout's deny window removed")
    kinds = sorted(w["kind"] for w in _get(kubectl, "appproject")["spec"]["syncWindows"])
    assert kinds == ["allow", "allow", "deny"]


def test_a_kustomization_someone_suspended_stays_theirs(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    """Suspended by hand during the calendar's hold, it is not resumed by the operator."""
    kubectl(
        "patch",
        "kustomization",
        "payroll",
        "-n",
        NS,
        "--type=merge",
        "-p",
        '{"spec":{"suspend":true}}',
    )
    kubectl("apply", "-f", "-", input=_level(blackout=True))
    kubectl("apply", "-f", "-", input=_level(blackout=False))
    time.sleep(12)  # a pass of the loop
    assert _get(kubectl, "kustomization")["spec"]["suspend"] is True
