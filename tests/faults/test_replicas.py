"""Faults: two real operator replicas on one cluster.

Exactly one leads: it runs the loops (here: the health loop, seen in its /metrics) and Kopf
handles objects in it alone; the other stands by. SIGKILL the leader and the standby leads
within the peering lifetime (10 s here) plus a look (2 s).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.processes import free_ports
from tests.support import Kubectl, OperatorProcess, wait_for

PEERING = "opsledger-ha"
PEERING_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: clusterkopfpeerings.kopf.dev}
spec:
  group: kopf.dev
  scope: Cluster
  names: {kind: ClusterKopfPeering, plural: clusterkopfpeerings, singular: clusterkopfpeering}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""
LIFETIME = 10
ITEM = """
apiVersion: v1
kind: Namespace
metadata: {name: ha}
---
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {name: checkout, namespace: ha}
spec: {class: Service, service: checkout}
"""


def _metric(port: int, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    return None


@pytest.fixture
def replicas(
    devenv: DevEnvironment, kubectl: Kubectl, crds: None, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, OperatorProcess, int, int]]:
    kubectl("apply", "-f", "-", input=PEERING_CRD)
    kubectl("wait", "--for=condition=Established", "crd/clusterkopfpeerings.kopf.dev")
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering"}
    kubectl("apply", "-f", "-", input=json.dumps({**peering, "metadata": {"name": PEERING}}))
    kubectl("apply", "-f", "-", input=ITEM)  # something for the health loop to measure
    common = {
        "OPSLEDGER_PEERING": PEERING,
        "OPSLEDGER_PEERING_LIFETIME": str(LIFETIME),
        "OPSLEDGER_LEADER_LEASE_NAMESPACE": "default",
    }
    metrics_a = devenv.ports()["operator-metrics"]
    health_b, metrics_b, receiver_b = free_ports(3)
    a = OperatorProcess(devenv, tmp_path / "a.log").start(
        env={**common, "OPSLEDGER_PRIORITY": "200"}
    )
    b = OperatorProcess(devenv, tmp_path / "b.log").start(
        env={
            **common,
            "OPSLEDGER_PRIORITY": "100",
            "OPSLEDGER_HEALTH_PORT": str(health_b),
            "OPSLEDGER_METRICS_PORT": str(metrics_b),
            "OPSLEDGER_RECEIVER_PORT": str(receiver_b),
        }
    )
    yield a, b, metrics_a, metrics_b
    a.stop()
    b.stop()
    kubectl("delete", "clusterkopfpeering", PEERING, "--ignore-not-found")


def _lease_holder(kubectl: Kubectl) -> str:
    def held() -> str | None:
        found = kubectl.run("get", "lease", PEERING, "-n", "default", "-o", "json", check=False)
        return (
            json.loads(found.stdout)["spec"].get("holderIdentity")
            if found.returncode == 0
            else None
        )

    holder: str = wait_for(held, what="the leader's Lease")
    return holder


def test_one_replica_leads_and_a_standby_takes_over_when_it_dies(
    kubectl: Kubectl,
    replicas: tuple[OperatorProcess, OperatorProcess, int, int],
) -> None:
    a, b, metrics_a, metrics_b = replicas
    wait_for(lambda: _metric(metrics_a, "opsledger_leader") == 1, what="replica a leading")
    wait_for(lambda: _metric(metrics_b, "opsledger_leader") == 0, what="replica b standing by")
    wait_for(
        lambda: "is standing by: " in b.output() and "has a higher priority" in b.output(),
        what="replica b saying whom it stands by for",
    )
    # Kopf keeps b's handlers paused from the start, by the same rule.
    assert "Resuming operations after the pause" not in b.output()
    # Only the leader runs the loops: a's health loop measures, b's never has.
    wait_for(
        lambda: (_metric(metrics_a, "opsledger_health_last_evaluation_timestamp_seconds") or 0) > 0,
        what="the leader's health loop",
    )
    time.sleep(4)  # two health intervals: b would have measured by now if it ran its loop
    assert not _metric(metrics_b, "opsledger_health_last_evaluation_timestamp_seconds")

    # The leader's Lease says who leads (kubectl get lease); only the leader writes it.
    assert _lease_holder(kubectl).endswith(f"/{a.proc.pid}")  # type: ignore[union-attr]

    a.kill()  # no goodbye: its keep-alive simply ages
    killed = time.monotonic()
    wait_for(
        lambda: _metric(metrics_b, "opsledger_leader") == 1,
        timeout=LIFETIME + 20,
        what="replica b taking over",
    )
    took = time.monotonic() - killed
    print(f"replica b led {took:.1f} s after replica a was killed (lifetime {LIFETIME} s)")
    assert took < LIFETIME + 2 + 5, f"took over after {took:.1f} s"
    wait_for(
        lambda: "Resuming operations after the pause" in b.output(),
        what="Kopf resuming replica b's handlers",
    )
    lease = kubectl.json("get", "lease", PEERING, "-n", "default")["spec"]
    assert lease["holderIdentity"].endswith(f"/{b.proc.pid}")  # type: ignore[union-attr]
    assert lease["leaseTransitions"] >= 1
    wait_for(
        lambda: (_metric(metrics_b, "opsledger_health_last_evaluation_timestamp_seconds") or 0) > 0,
        what="the new leader's health loop",
    )
