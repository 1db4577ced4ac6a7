"""Faults: the operator SIGKILLed at random moments while 30 changes with plans run.

Thirty standard changes (pre-approved by a template on the CMDB's protected branch), each
scaling its own Deployment by a JSON patch, run while the operator is killed three times at
random points and started again. Afterwards every change is in a terminal phase, no plan step
was applied twice (a Deployment's generation moves once per applied spec change), every change
has its record in the CMDB, and no proposal branch is left behind.
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path
from typing import Any

from opsledger.devenv.environment import DevEnvironment
from tests.support import Kubectl, OperatorProcess, git, wait_for

NS = "kill-chg"
COUNT = 30
TERMINAL = {"Completed", "Failed", "RolledBack", "Cancelled", "Rejected"}
TEMPLATE = """summary: Scale a shop workload
risk: low
targets: {services: [shop]}
plan:
  kinds: [Deployment]
  patchTypes: [json]
  allow:
  - path: /spec/replicas
    min: 1
    max: 5
"""


def _objects(i: int) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: w-{i}, namespace: {NS}, labels: {{app: w-{i}}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: w-{i}}}}}
  template:
    metadata: {{labels: {{app: w-{i}}}}}
    spec: {{containers: [{{name: app, image: "w:1.0"}}]}}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: w-{i}, namespace: {NS}}}
spec:
  class: Workload
  service: shop
  source: {{apiVersion: apps/v1, kind: Deployment, name: w-{i}}}
"""


def _change(i: int) -> str:
    return f"""
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: scale-{i}, namespace: {NS}}}
spec:
  type: standard
  template: scale
  summary: Scale w-{i} to 2
  service: shop
  targets: [w-{i}]
  checks: {{noCriticalAlerts: false}}
  soak: 4s
  plan:
  - target: {{apiVersion: apps/v1, kind: Deployment, name: w-{i}}}
    patchType: json
    patch: [{{op: replace, path: /spec/replicas, value: 2}}]
"""


def _publish_template(devenv: DevEnvironment, work: Path) -> None:
    git("clone", "--quiet", str(devenv.cmdb_remote), str(work))
    (work / "standard-changes").mkdir(exist_ok=True)
    (work / "standard-changes" / "scale.yaml").write_text(TEMPLATE)
    git("add", "-A", cwd=work)
    who = ("Dana Manager", "dana@example.com")
    git("commit", "--quiet", "-m", "Add the scale standard change", cwd=work, who=who)
    for _ in range(10):  # the operator pushes records to main meanwhile
        if subprocess.run(["git", "push", "--quiet"], cwd=work, check=False).returncode == 0:
            return
        git("pull", "--quiet", "--rebase", cwd=work, who=who)
    raise AssertionError("could not push the template")


def _phases(kubectl: Kubectl) -> dict[str, str]:
    items: list[dict[str, Any]] = kubectl.json("get", "changes", "-n", NS)["items"]
    return {c["metadata"]["name"]: (c.get("status") or {}).get("phase", "") for c in items}


def test_changes_survive_a_killed_operator_without_a_step_applied_twice(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    kubectl("create", "namespace", NS)
    level = (
        "apiVersion: opsledger.io/v1alpha1\nkind: ServiceLevel\n"
        f"metadata: {{name: shop, namespace: {NS}}}\nspec: {{service: shop}}\n"
    )
    kubectl("apply", "-f", "-", input=level + "".join(f"---{_objects(i)}" for i in range(COUNT)))
    _publish_template(devenv, tmp_path / "cmdb")
    before = {
        d["metadata"]["name"]: d["metadata"]["generation"]
        for d in kubectl.json("get", "deployments", "-n", NS)["items"]
    }
    kubectl("apply", "-f", "-", input="---".join(_change(i) for i in range(COUNT)))

    wait_for(
        lambda: any(v in ("InProgress", "Verifying") for v in _phases(kubectl).values()),
        timeout=90,
        what="the first changes running",
    )
    chance = random.Random(15)  # the kill points, reproducible
    in_flight = []
    for _ in range(3):
        time.sleep(chance.uniform(0.2, 3))
        in_flight.append(sum(v not in TERMINAL for v in _phases(kubectl).values()))
        operator.kill()
        operator.start()
    assert in_flight[0] > 0, "the first kill found every change finished already"
    print(f"changes not yet finished at each kill: {in_flight}")

    def finished() -> dict[str, str] | None:
        found = _phases(kubectl)
        return found if found and all(v in TERMINAL for v in found.values()) else None

    phases = wait_for(finished, timeout=240, what="every change in a terminal phase")
    assert len(phases) == COUNT
    deployments = {
        d["metadata"]["name"]: d for d in kubectl.json("get", "deployments", "-n", NS)["items"]
    }
    for i in range(COUNT):
        phase, deployment = phases[f"scale-{i}"], deployments[f"w-{i}"]
        moved = deployment["metadata"]["generation"] - before[f"w-{i}"]
        if phase == "Completed":
            assert deployment["spec"]["replicas"] == 2, i
            assert moved == 1, f"scale-{i}: the step changed w-{i} {moved} times"
        else:  # failed and rolled back: applied once and restored once, at most
            why = kubectl.json("get", "change", f"scale-{i}", "-n", NS)["status"]["transitions"]
            assert moved in (0, 2), f"scale-{i} ({phase}): w-{i} changed {moved} times: {why}"
    assert list(phases.values()).count("Completed") >= COUNT * 0.9, phases

    git(
        "pull",
        "--quiet",
        "--rebase",
        cwd=tmp_path / "cmdb",
        who=("Dana Manager", "dana@example.com"),
    )
    records = sorted(
        (tmp_path / "cmdb" / "clusters" / devenv.cluster / NS / "changes").glob("*.yaml")
    )
    assert [r.stem for r in records] == sorted(f"scale-{i}" for i in range(COUNT))
    branches = git("ls-remote", "--heads", str(devenv.cmdb_remote))
    assert f"changes/{devenv.cluster}/{NS}/" not in branches
    assert operator.output().count("Signal SIGTERM") == 0  # it was killed, never asked to stop
