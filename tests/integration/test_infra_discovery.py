"""Infrastructure in the CMDB: discovery takes in Nodes, PersistentVolumes, claims and Ingresses,
relates workloads to the nodes their pods run on and the volumes they store in, and impact
analysis from a node reaches the workload, its Service and its Ingress."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from opsledger.devenv.environment import DevEnvironment
from tests.support import Kubectl, OperatorProcess, wait_for

APPS, INFRA = "infra-apps", "infra-ci"
OBJECTS = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {APPS}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: {INFRA}}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: pv-orders}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  hostPath: {{path: /srv/orders}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: orders-data, namespace: {APPS}}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  volumeName: pv-orders
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: orders, namespace: {APPS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: orders}}}}
  template:
    metadata: {{labels: {{app: orders}}}}
    spec:
      containers: [{{name: api, image: registry.example/orders:1.0}}]
      volumes: [{{name: data, persistentVolumeClaim: {{claimName: orders-data}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: orders-svc, namespace: {APPS}}}
spec:
  selector: {{app: orders}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: orders-web, namespace: {APPS}}}
spec:
  rules:
  - host: orders.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{service: {{name: orders-svc, port: {{number: 80}}}}}}
"""


@pytest.fixture(scope="module")
def operator(
    devenv: DevEnvironment, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("infra") / "operator.log"
    proc = OperatorProcess(devenv, log).start(
        env={
            "OPSLEDGER_DISCOVERY_KINDS": (
                "Node,PersistentVolume,PersistentVolumeClaim,Ingress,Deployment,Service"
            ),
            "OPSLEDGER_DISCOVERY_NAMESPACES": APPS,
            "OPSLEDGER_DISCOVERY_SELECTOR": "",  # everything in those namespaces
            "OPSLEDGER_DISCOVERY_INFRA_NAMESPACE": INFRA,
        }
    )
    yield proc
    proc.stop()


def _relationships(kubectl: Kubectl, namespace: str, name: str) -> set[tuple[str, str]]:
    obj = kubectl.run("get", "ci", name, "-n", namespace, "-o", "json", check=False)
    if obj.returncode != 0:
        return set()
    rels = json.loads(obj.stdout).get("status", {}).get("relationships") or []
    return {(r["type"], r["target"]) for r in rels}


def test_workloads_relate_to_the_infrastructure_they_use(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("apply", "-f", "-", input=OBJECTS)
    nodes = [n["metadata"]["name"] for n in kubectl.json("get", "nodes")["items"]]

    def followers() -> dict[str, str] | None:
        """node → the item following it (the elder, if another test's item follows it too)."""
        items = kubectl.json("get", "ci", "-A")["items"]
        items.sort(key=lambda i: i["metadata"]["creationTimestamp"])
        found: dict[str, str] = {}
        for i in items:
            source = i["spec"].get("source") or {}
            if source.get("kind") == "Node" and i.get("status", {}).get("class") == "Node":
                found.setdefault(
                    source["name"], f"{i['metadata']['namespace']}/{i['metadata']['name']}"
                )
        return found if set(found) == set(nodes) else None

    following = wait_for(followers, what="an item following every node")
    # items discovery made are named after their node (unless another item followed it first)
    for n, item in following.items():
        assert item == f"{INFRA}/node-{n}" or not item.startswith(f"{INFRA}/")
    assert any(item.startswith(f"{INFRA}/node-") for item in following.values())

    def placed() -> str | None:
        pods = kubectl.json("get", "pods", "-n", APPS, "-l", "app=orders")["items"]
        return next((p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName")), None)

    node = wait_for(placed, what="the orders pod scheduled")
    want = {
        ("runsOn", following[node]),
        ("storesIn", "orders-data"),
    }
    wait_for(
        lambda: want <= _relationships(kubectl, APPS, "orders"),
        timeout=90,
        what=f"orders runsOn {node} and storesIn its claim",
    )
    wait_for(
        lambda: (
            ("storesIn", f"{INFRA}/persistentvolume-pv-orders")
            in _relationships(kubectl, APPS, "orders-data")
        ),
        what="the claim stored in its volume",
    )
    wait_for(
        lambda: ("exposes", "orders-svc") in _relationships(kubectl, APPS, "orders-web"),
        what="the Ingress exposing the Service",
    )

    def impact() -> set[str] | None:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "opsledger.cli",
                "cmdb",
                "impact",
                following[node],
                "-o",
                "json",
            ],
            env={**os.environ, **devenv.env()},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        reached = set(json.loads(result.stdout)["dependents"])
        want = {f"{APPS}/orders", f"{APPS}/orders-svc", f"{APPS}/orders-web"}
        return reached if want <= reached else None

    reached = wait_for(
        impact, timeout=60, interval=2, what="the node's impact reaching the Ingress"
    )
    assert f"{APPS}/orders-data" not in reached  # the claim does not depend on the node
