"""The change calendar carried to Argo CD and Flux, on the real API server, which validates every
write the operator makes against their CRDs as their projects generate them from their Go API
types (devenv/external_crds.py).

Flux's kustomize-controller itself runs (built from its Go module by `tools/build.sh flux`):
a freeze keeps a new artifact from being applied, and lifting it applies it. Argo CD's
controllers are not run (its release needs Go 1.27 to build): what is tested there is what
OpsLedger writes, an AppProject's syncWindows equal to the ServiceLevel's calendar. A
HelmRelease is suspended like a Kustomization, checked against helm-controller's CRD (its
controller, which needs a Helm repository or OCI registry to install from, is not run).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.external_crds import FLUX_CONTROLLER_CRDS, external_crd
from opsledger.devenv.flux import ArtifactStore, kustomize_controller
from tests.support import Kubectl, OperatorProcess, wait_for

NS = "gitops"
REASON = "payroll run"


@pytest.fixture(scope="module")
def operator(
    devenv: DevEnvironment, kubectl: Kubectl, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    for name in ("argocd-appproject", "flux-helmrelease", *FLUX_CONTROLLER_CRDS):
        kubectl("apply", "--server-side", "-f", str(external_crd(name)))
        kubectl("wait", "--for=condition=Established", "-f", str(external_crd(name)))
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
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: payroll
  namespace: {NS}
  labels: {{opsledger.io/calendar: "true"}}
  annotations: {{opsledger.io/calendar-from: payroll}}
spec:
  interval: 5m
  chart:
    spec:
      chart: payroll
      version: "1.x"
      sourceRef: {{kind: HelmRepository, name: payroll}}
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

    def suspended(kind: str) -> dict[str, Any] | None:
        obj = _get(kubectl, kind)
        return obj if obj["spec"].get("suspend") is True else None

    for kind in ("kustomization", "helmrelease"):
        held = wait_for(lambda kind=kind: suspended(kind), timeout=60, what=f"the {kind} suspended")
        note = held["metadata"]["annotations"]["opsledger.io/suspended-for-freeze"]
        assert "blackout" in note
        assert REASON in note

    # The blackout is lifted: the Kustomization deploys again, the deny window goes.
    kubectl("apply", "-f", "-", input=_level(blackout=False))

    def resumed(kind: str) -> dict[str, Any] | None:
        obj = _get(kubectl, kind)
        return obj if obj["spec"].get("suspend") is False else None

    for kind in ("kustomization", "helmrelease"):
        back = wait_for(lambda kind=kind: resumed(kind), timeout=60, what=f"the {kind} resumed")
        annotations = back["metadata"].get("annotations") or {}
        assert "opsledger.io/suspended-for-freeze" not in annotations
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


LIVE = "gitops-live"


def _web_level(*, frozen: bool) -> str:
    now = datetime.now(UTC)
    freeze = (
        f"""
  freezes:
  - start: "{now - timedelta(minutes=1):%Y-%m-%dT%H:%M:%SZ}"
    end: "{now + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}"
    reason: peak trading"""
        if frozen
        else ""
    )
    return f"""
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {{name: web, namespace: {LIVE}}}
spec:
  service: web{freeze}
"""


def _config_maps(version: str) -> dict[str, str]:
    return {
        f"{app}/configmap.yaml": f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: {app}-config, namespace: {LIVE}}}
data: {{version: "{version}"}}
"""
        for app in ("web", "batch")
    }


# The namespace opts in: its Kustomizations follow the calendar of its service web, except
# batch, which opts out.
WEB = f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {LIVE}
  labels: {{opsledger.io/calendar: "true"}}
  annotations: {{opsledger.io/calendar-from: web}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: ExternalArtifact
metadata: {{name: apps, namespace: {LIVE}}}
spec: {{}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: web, namespace: {LIVE}}}
spec:
  interval: 1m
  retryInterval: 5s
  path: ./web
  prune: true
  sourceRef: {{kind: ExternalArtifact, name: apps}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: batch
  namespace: {LIVE}
  labels: {{opsledger.io/calendar: "false"}}
spec:
  interval: 1m
  retryInterval: 5s
  path: ./batch
  prune: true
  sourceRef: {{kind: ExternalArtifact, name: apps}}
"""


def test_a_freeze_keeps_the_real_kustomize_controller_from_applying_a_new_revision(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    """kustomize-controller deploys what an ExternalArtifact names, in a namespace that follows
    the calendar of its service. A freeze begins: OpsLedger suspends the Kustomization, and the
    revision published during the freeze is not applied (the controller applied the first one
    within seconds), while the Kustomization that opted out applies it. The freeze is lifted:
    OpsLedger resumes the first and the controller applies the new revision."""
    kubectl("apply", "-f", "-", input=WEB.split("---", maxsplit=1)[0])
    kubectl("apply", "-f", "-", input=_web_level(frozen=False))
    store = ArtifactStore(tmp_path / "artifacts")

    def publish(version: str) -> str:
        artifact = store.publish("apps", _config_maps(version))
        kubectl(
            "patch", "externalartifact", "apps", "-n", LIVE, "--subresource=status",
            "--type=merge", "-p", json.dumps({"status": {"artifact": artifact}}),
        )  # fmt: skip
        return str(artifact["revision"])

    def deployed(app: str = "web") -> str | None:
        found = kubectl.run(
            "get", "configmap", f"{app}-config", "-n", LIVE, "-o", "jsonpath={.data.version}",
            check=False,
        )  # fmt: skip
        return found.stdout if found.returncode == 0 and found.stdout else None

    try:
        with kustomize_controller(devenv.kubeconfig, tmp_path / "kustomize-controller.log"):
            kubectl("apply", "-f", "-", input=WEB)
            first = publish("1")
            began = time.monotonic()
            assert wait_for(deployed, timeout=90, what="revision 1 applied") == "1"
            took = time.monotonic() - began
            assert wait_for(lambda: deployed("batch"), what="batch's revision 1") == "1"
            applied = _get_web(kubectl)["status"]["lastAppliedRevision"]
            assert applied == first

            kubectl("apply", "-f", "-", input=_web_level(frozen=True))
            wait_for(
                lambda: _get_web(kubectl)["spec"].get("suspend") is True,
                timeout=60,
                what="the Kustomization suspended for the freeze",
            )
            second = publish("2")
            # The opted-out Kustomization deploys through the freeze; the held one does not.
            assert wait_for(lambda: deployed("batch") == "2", what="batch's revision 2")
            time.sleep(max(15.0, 3 * took))  # three times what the first revision took
            assert deployed() == "1"
            assert _get_web(kubectl, "batch")["spec"].get("suspend") in (None, False)
            assert _get_web(kubectl)["status"]["lastAppliedRevision"] == first

            kubectl("apply", "-f", "-", input=_web_level(frozen=False))
            assert wait_for(
                lambda: deployed() == "2" and "2", timeout=120, what="revision 2 applied"
            )
            resumed = _get_web(kubectl)
            assert resumed["spec"]["suspend"] is False
            assert resumed["status"]["lastAppliedRevision"] == second
    finally:
        store.close()


def _get_web(kubectl: Kubectl, name: str = "web") -> dict[str, Any]:
    found: dict[str, Any] = kubectl.json("get", "kustomization", name, "-n", LIVE)
    return found
