"""kwok: fake nodes for the local control plane, so Deployments schedule and their Pods run.

kwok manages only the nodes annotated with `FAKE_NODE_ANNOTATION`, and moves nodes and pods
through their lifecycle with the stages kwok ships (read from its Go module).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from opsledger.devenv.kubeconfig import RunKubectl
from opsledger.devenv.probes import http_get
from opsledger.devenv.processes import Component

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
NODE_LABEL = "type=kwok"
STAGES = ("node/fast", "node/heartbeat-with-lease", "pod/fast")


def kwok(binary: Path, *, kubeconfig: Path, config: Path, port: int, log: Path) -> Component:
    return Component(
        "kwok",
        [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
            f"--config={config}",
            f"--server-address=127.0.0.1:{port}",
        ],
        port,
        lambda: http_get(f"http://127.0.0.1:{port}/healthz") == b"ok",
        log,
    )


def write_stages(kwok_module: Path, target: Path) -> None:
    """kwok's stage documents (`STAGES`, from its module's kustomize folder) as one file."""
    stages = kwok_module / "kustomize" / "stage"
    files = [f for stage in STAGES for f in sorted((stages / stage).glob("*.yaml"))]
    docs = [f.read_text() for f in files if f.name != "kustomization.yaml"]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n---\n".join(d.strip() for d in docs) + "\n")


def fake_node(index: int) -> dict[str, Any]:
    """Node `kwok-node-<index>`: 16 CPUs, 64 GiB, in one of three zones."""
    name = f"kwok-node-{index}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION: "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                "topology.kubernetes.io/zone": f"zone-{index % 3}",
            },
        },
        "status": {
            "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
        },
    }


def ensure_nodes(kubectl: RunKubectl, count: int) -> int:
    """Create the fake nodes that do not exist yet; returns how many were created."""
    existing = set(kubectl("get", "nodes", "-o", "name").split())
    nodes = [fake_node(i) for i in range(count)]
    wanted = [n for n in nodes if f"node/{n['metadata']['name']}" not in existing]
    if wanted:
        docs = "\n---\n".join(yaml.safe_dump(n) for n in wanted)
        kubectl("create", "-f", "-", input=docs)
    return len(wanted)


def nodes_ready(kubectl: RunKubectl, count: int) -> bool:
    """At least `count` kwok nodes report Ready."""
    out = kubectl(
        "get",
        "nodes",
        "-l",
        NODE_LABEL,
        "-o",
        'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
    )
    return out.split().count("True") >= count
