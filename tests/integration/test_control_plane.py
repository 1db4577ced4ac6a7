"""The control plane is real: the pinned Kubernetes release, and Deployments really roll out."""

from __future__ import annotations

from tests.support import Kubectl, wait_for

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: rollout}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "registry.example/web:1.0"}]
"""


def _rolled_out(kubectl: Kubectl) -> None:
    """`kubectl rollout status`, saying on a timeout where the rollout stood (pods, sets, events
    and any webhook configuration left registered)."""
    done = kubectl.run(
        "rollout", "status", "deployment/web", "-n", "rollout", "--timeout=90s", check=False
    )
    if done.returncode != 0:
        where = [
            kubectl.run(*args, check=False).stdout
            for args in (
                ("get", "pods,replicasets", "-n", "rollout", "-o", "wide"),
                ("get", "events", "-n", "rollout", "--sort-by=.lastTimestamp"),
                ("get", "validatingwebhookconfigurations,mutatingwebhookconfigurations"),
            )
        ]
        raise AssertionError(f"the rollout did not finish: {done.stderr}\n" + "\n".join(where))


def test_the_server_is_the_pinned_release(kubectl: Kubectl) -> None:
    version = kubectl.json("version")
    assert version["serverVersion"]["gitVersion"] == "v1.37.2"
    assert version["clientVersion"]["gitVersion"] == "v1.37.2"


def test_a_deployment_rolls_out_on_kwok_nodes_and_follows_set_image(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", "rollout")
    kubectl("apply", "-f", "-", input=DEPLOYMENT)
    _rolled_out(kubectl)
    pods = kubectl.json("get", "pods", "-n", "rollout", "-l", "app=web")["items"]
    assert len(pods) == 3
    assert {p["status"]["phase"] for p in pods} == {"Running"}
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in pods)

    kubectl("set", "image", "deployment/web", "app=registry.example/web:2.0", "-n", "rollout")
    _rolled_out(kubectl)

    def rolled() -> bool:
        pods = kubectl.json("get", "pods", "-n", "rollout", "-l", "app=web")["items"]
        images = {
            p["spec"]["containers"][0]["image"]
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
        }
        return images == {"registry.example/web:2.0"} and len(pods) == 3

    wait_for(rolled, timeout=60, what="pods on the new image")
    sets = kubectl.json("get", "replicasets", "-n", "rollout", "-l", "app=web")["items"]
    assert len(sets) == 2  # the old ReplicaSet is kept (scaled to 0) for rollback
