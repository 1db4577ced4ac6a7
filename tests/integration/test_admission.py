"""The admission webhook, called by the real API server: protected workloads and bad manifests.

The operator serves the webhook over TLS on loopback and registers its own
ValidatingWebhookConfiguration, exactly as `make run` does; kubectl is a person (the admin
identity), the operator has an identity of its own.
"""

from __future__ import annotations

import json
import shutil
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.pki import CertificateAuthority
from tests.support import (
    Kubectl,
    OperatorProcess,
    shop,
    wait_for,
    wait_guarded,
    webhook_settings,
)

NS = "guarded"


@pytest.fixture(scope="module")
def operator(
    devenv: DevEnvironment, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(devenv, log).start(env=webhook_settings(devenv))
    kubectl = Kubectl(devenv)
    wait_for(
        lambda: (
            kubectl.run(
                "get", "validatingwebhookconfiguration", "opsledger", check=False
            ).returncode
            == 0
        ),
        what="the webhook registered",
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def shop_with_web(kubectl: Kubectl, operator: OperatorProcess) -> None:
    manifests = shop(
        NS,
        replicas=1,
        window='{schedule: "0 22 * * 6", duration: 4h, timeZone: Europe/Berlin}',
        item="criticality: high\n  protected: true",
    )
    kubectl("apply", "-f", "-", input=manifests)
    wait_guarded(kubectl, NS, "web")


def _image(kubectl: Kubectl) -> str:
    deployment: dict[str, Any] = kubectl.json("get", "deployment", "web", "-n", NS)
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def test_a_protected_deployment_cannot_be_changed_outside_a_change(
    kubectl: Kubectl, shop_with_web: None
) -> None:
    denied = kubectl.run("set", "image", "deployment/web", "app=web:2.0", "-n", NS, check=False)
    assert denied.returncode != 0
    message = denied.stderr
    assert 'admission webhook "guard.opsledger.io" denied the request' in message
    assert "Deployment guarded/web" in message
    assert "ConfigurationItem web" in message
    assert "criticality high" in message
    assert "The next open window is" in message
    assert "spec.type: emergency" in message
    assert _image(kubectl) == "web:1.0"

    scaled = kubectl.run("scale", "deployment/web", "--replicas=3", "-n", NS, check=False)
    assert scaled.returncode != 0, "the scale subresource must be guarded too"
    assert "guard-subresources.opsledger.io" in scaled.stderr
    deleted = kubectl.run("delete", "deployment/web", "-n", NS, "--wait=false", check=False)
    assert deleted.returncode != 0
    assert "delete Deployment guarded/web" in deleted.stderr

    # What does not change the workload passes: a label, an annotation.
    kubectl("label", "deployment/web", "-n", NS, "team=checkout")
    kubectl("annotate", "deployment/web", "-n", NS, "note=reviewed")


def test_a_permit_in_progress_opens_the_workload_until_it_is_done(
    kubectl: Kubectl, shop_with_web: None
) -> None:
    kubectl(
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: hotfix, namespace: {NS}}}
spec:
  type: emergency
  summary: Hotfix web by hand
  service: shop
  targets: [web]
""",
    )
    wait_for(
        lambda: (
            kubectl.json("get", "change", "hotfix", "-n", NS).get("status", {}).get("phase")
            == "InProgress"
        ),
        timeout=60,
        what="the permit in progress",
    )
    kubectl("set", "image", "deployment/web", "app=web:1.1", "-n", NS)
    assert _image(kubectl) == "web:1.1"

    kubectl("patch", "change", "hotfix", "-n", NS, "--type=merge", "-p", '{"spec":{"done":true}}')
    wait_for(
        lambda: (
            kubectl.json("get", "change", "hotfix", "-n", NS).get("status", {}).get("phase")
            == "Completed"
        ),
        timeout=60,
        what="the permit completed",
    )
    again = kubectl.run("set", "image", "deployment/web", "app=web:1.2", "-n", NS, check=False)
    assert again.returncode != 0
    assert _image(kubectl) == "web:1.1"


def test_a_label_protects_a_workload_without_an_item(kubectl: Kubectl, shop_with_web: None) -> None:
    kubectl("create", "deployment", "cache", "--image=cache:1", "-n", NS, "--replicas=1")
    kubectl("label", "deployment/cache", "-n", NS, "opsledger.io/protected=true")
    denied = kubectl.run("set", "image", "deployment/cache", "cache=cache:2", "-n", NS, check=False)
    assert denied.returncode != 0
    assert "labelled opsledger.io/protected=true" in denied.stderr
    # Taking the label off is itself guarded: it would switch the guard off.
    unlabel = kubectl.run(
        "label", "deployment/cache", "-n", NS, "opsledger.io/protected-", check=False
    )
    assert unlabel.returncode != 0


def test_a_bad_time_zone_is_rejected_by_the_api_server_naming_the_field(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("create", "namespace", "guarded-bad")
    result = kubectl.run(
        "apply",
        "-f",
        "-",
        input="""
apiVersion: opsledger.io/v1alpha1
kind: ServiceLevel
metadata: {name: mars, namespace: guarded-bad}
spec:
  service: mars
  maintenanceWindows: [{schedule: "0 22 * * 6", duration: 4h, timeZone: Mars/Olympus}]
""",
        check=False,
    )
    assert result.returncode != 0
    assert "spec.maintenanceWindows.0.timeZone" in result.stderr
    assert "'Mars/Olympus' is not an IANA time zone" in result.stderr
    assert kubectl.run("get", "slo", "mars", "-n", "guarded-bad", check=False).returncode != 0


def test_a_change_naming_items_that_do_not_exist_is_rejected(
    kubectl: Kubectl, shop_with_web: None
) -> None:
    result = kubectl.run(
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: typo, namespace: {NS}}}
spec:
  type: normal
  summary: Upgrade the wbe
  service: shop
  targets: [web, wbe]
""",
        check=False,
    )
    assert result.returncode != 0
    assert "spec.targets names ConfigurationItems that do not exist" in result.stderr
    assert "wbe" in result.stderr

    # A plan may only patch what its targets follow: the approval policy, the risk and the
    # guard all judge a change by its targets.
    elsewhere = kubectl.run(
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: sideways, namespace: {NS}}}
spec:
  type: normal
  summary: Upgrade web (and quietly scale payments)
  service: shop
  targets: [web]
  plan:
  - target: {{apiVersion: apps/v1, kind: Deployment, name: payments}}
    patch: {{spec: {{replicas: 0}}}}
""",
        check=False,
    )
    assert elsewhere.returncode != 0
    assert "spec.plan[0] patches Deployment payments, which is not the source" in elsewhere.stderr


def test_the_guard_reaches_pods_autoscalers_owners_and_the_protecting_item(
    kubectl: Kubectl, shop_with_web: None
) -> None:
    """The ways around a guarded Deployment a namespace user would try, each refused naming
    the item: its Pods (delete, exec), an autoscaler pointed at it, an owner whose deletion
    takes it along, its guard label and annotation, and the protecting item itself."""
    pod = wait_for(
        lambda: next(iter(kubectl.json("get", "pods", "-n", NS, "-l", "app=web")["items"]), None),
        what="a pod of web",
    )["metadata"]["name"]
    deleted = kubectl.run("delete", "pod", pod, "-n", NS, "--wait=false", check=False)
    assert deleted.returncode != 0
    assert f"delete Pod {pod}, which reaches Deployment guarded/web" in deleted.stderr
    assert "ConfigurationItem web" in deleted.stderr
    hpa = f"""
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: web, namespace: {NS}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  minReplicas: 5
  maxReplicas: 9
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50}}}}
"""
    scaler = kubectl.run("apply", "-f", "-", input=hpa, check=False)
    assert scaler.returncode != 0
    assert "point HorizontalPodAutoscaler web at, which reaches Deployment guarded/web" in (
        scaler.stderr
    )
    # A metadata-only edit that hands the Deployment to an owner the garbage collector would
    # take it away with, or takes the guard's own marks off.
    kubectl("create", "configmap", "decoy", "-n", NS)
    uid = kubectl.json("get", "configmap", "decoy", "-n", NS)["metadata"]["uid"]
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "decoy", "uid": uid}
    owner = json.dumps({"metadata": {"ownerReferences": [reference]}})
    for patch in (
        owner,
        '{"metadata":{"labels":{"opsledger.io/protected":null}}}',
        '{"metadata":{"annotations":{"opsledger.io/protected-by":"decoy"}}}',
    ):
        edited = kubectl.run("patch", "deployment/web", "-n", NS, "-p", patch, check=False)
        assert edited.returncode != 0, patch
        assert "change Deployment guarded/web" in edited.stderr, patch
    # The protecting item: neither switched off nor deleted outside a change.
    off = kubectl.run(
        "patch",
        "ci/web",
        "-n",
        NS,
        "--type=merge",
        "-p",
        '{"spec":{"protected":false}}',
        check=False,
    )
    assert off.returncode != 0
    assert "change ConfigurationItem guarded/web: it is protected" in off.stderr
    gone = kubectl.run("delete", "ci/web", "-n", NS, "--wait=false", check=False)
    assert gone.returncode != 0
    assert "delete ConfigurationItem guarded/web" in gone.stderr
    assert kubectl.json("get", "ci", "web", "-n", NS)["spec"]["protected"] is True


JANE = ("--as=jane", "--as-group=team-shop")  # a namespace user: the edit role in NS
JANE_RBAC = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: jane-edits, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: jane}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: items, namespace: {NS}}}
rules:
- apiGroups: [opsledger.io]
  resources: [configurationitems, changes]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: jane-items, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: items}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: jane}}]
"""


def _refused(kubectl: Kubectl, *args: str, says: str, stdin: str | None = None) -> None:
    done = kubectl.run(*args, *JANE, input=stdin, check=False)
    assert done.returncode != 0, args
    assert says in done.stderr, (args, done.stderr)
    assert "ConfigurationItem web" in done.stderr, args


def test_a_namespace_user_finds_no_way_around_the_guard_through_what_the_workload_owns(
    kubectl: Kubectl, shop_with_web: None
) -> None:
    """Jane has the edit role in the namespace. She tries the workload's Pods (a new image, a
    look-alike Pod for the ReplicaSet to adopt, an eviction), its ReplicaSet (scale, image,
    delete), an autoscaler under another API version, and retiring the protecting item: each
    refused, naming what it reaches. A node drain (who may cordon nodes) still evicts."""
    kubectl("apply", "-f", "-", input=JANE_RBAC)
    pod = wait_for(
        lambda: next(iter(kubectl.json("get", "pods", "-n", NS, "-l", "app=web")["items"]), None),
        what="a pod of web",
    )
    name = pod["metadata"]["name"]
    replicaset = pod["metadata"]["ownerReferences"][0]["name"]
    template_hash = pod["metadata"]["labels"]["pod-template-hash"]
    reaches = "which reaches Deployment guarded/web"
    _refused(
        kubectl,
        "set",
        "image",
        f"pod/{name}",
        "app=evil:1",
        "-n",
        NS,
        says=f"change Pod {name}, {reaches}",
    )
    look_alike = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "look-alike",
                "namespace": NS,
                "labels": {"app": "web", "pod-template-hash": template_hash},
            },
            "spec": {"containers": [{"name": "app", "image": "evil:1"}]},
        }
    )
    _refused(
        kubectl,
        "create",
        "-f",
        "-",
        stdin=look_alike,
        says=f"create Pod look-alike, which ReplicaSet {replicaset} would adopt, {reaches}",
    )
    _refused(
        kubectl,
        "scale",
        f"rs/{replicaset}",
        "--replicas=0",
        "-n",
        NS,
        says=f"scale ReplicaSet {replicaset}, {reaches}",
    )
    _refused(
        kubectl,
        "set",
        "image",
        f"rs/{replicaset}",
        "app=evil:1",
        "-n",
        NS,
        says=f"change ReplicaSet {replicaset}, {reaches}",
    )
    _refused(
        kubectl,
        "delete",
        f"rs/{replicaset}",
        "-n",
        NS,
        "--wait=false",
        says=f"delete ReplicaSet {replicaset}, {reaches}",
    )
    eviction = json.dumps(
        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": NS}}
    )
    path = f"/api/v1/namespaces/{NS}/pods/{name}/eviction"
    _refused(
        kubectl,
        "create",
        "--raw",
        path,
        "-f",
        "-",
        stdin=eviction,
        says=f"evict Pod {name}, {reaches}",
    )
    sideways = f"""
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: sideways, namespace: {NS}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v2, kind: Deployment, name: web}}
  minReplicas: 1
  maxReplicas: 1
"""
    _refused(
        kubectl,
        "apply",
        "-f",
        "-",
        stdin=sideways,
        says=f"point HorizontalPodAutoscaler sideways at, {reaches}",
    )
    retire = '{"spec":{"lifecycle":"retired"}}'
    _refused(
        kubectl,
        "patch",
        "ci/web",
        "-n",
        NS,
        "--type=merge",
        "-p",
        retire,
        says="change ConfigurationItem guarded/web: it is protected",
    )
    labels = kubectl.json("get", "deployment", "web", "-n", NS)["metadata"]["labels"]
    assert labels["opsledger.io/protected"] == "true"
    assert kubectl.json("get", "rs", replicaset, "-n", NS)["spec"]["replicas"] == 1
    # A node drain is not a namespace user's: the admin may cordon nodes, so the eviction is
    # never sent to the guard (and never waits for the operator).
    kubectl("create", "--raw", path, "-f", "-", input=eviction)


def test_a_decoy_item_protecting_the_same_workload_opens_nothing(
    kubectl: Kubectl, shop_with_web: None
) -> None:
    """A second, younger item claims web under a lenient service; an emergency change to the
    decoy is in progress, yet the workload stays shut: the eldest protecting item decides."""
    decoy = f"""
apiVersion: opsledger.io/v1alpha1
kind: ConfigurationItem
metadata: {{name: decoy, namespace: {NS}}}
spec:
  service: shop
  protected: true
  source: {{apiVersion: apps/v1, kind: Deployment, name: web}}
---
apiVersion: opsledger.io/v1alpha1
kind: Change
metadata: {{name: via-decoy, namespace: {NS}}}
spec:
  type: emergency
  summary: Change web through a decoy item
  service: shop
  targets: [decoy]
"""
    kubectl("apply", "-f", "-", input=decoy)

    def running() -> bool:
        obj = kubectl.json("get", "change", "via-decoy", "-n", NS)
        return bool((obj.get("status") or {}).get("phase") == "InProgress")

    wait_for(running, what="the emergency change on the decoy in progress")
    refused = kubectl.run("set", "image", "deployment/web", "app=web:6.6", "-n", NS, check=False)
    assert refused.returncode != 0
    assert "ConfigurationItem web" in refused.stderr
    assert "no approved Change targeting web that lets you in is in progress" in refused.stderr
    assert _image(kubectl) != "web:6.6"
    # The change to the decoy may remove the decoy, and then ends.
    kubectl("delete", "ci/decoy", "-n", NS, "--wait=false")
    kubectl(
        "patch", "change", "via-decoy", "-n", NS, "--type=merge", "-p", '{"spec":{"done":true}}'
    )


def test_a_killed_operator_stops_only_protected_workloads(
    kubectl: Kubectl, operator: OperatorProcess, shop_with_web: None
) -> None:
    """SIGKILLed, the operator leaves its webhooks registered (failurePolicy Fail): a protected
    Deployment is refused, an unprotected one in another namespace rolls out and scales."""
    kubectl("create", "namespace", "elsewhere")
    kubectl("create", "deployment", "free", "--image=free:1.0", "-n", "elsewhere", "--replicas=1")
    operator.kill()
    try:
        kubectl("set", "image", "deployment/free", "free=free:2.0", "-n", "elsewhere")
        kubectl("scale", "deployment/free", "--replicas=2", "-n", "elsewhere")
        kubectl("label", "deployment/free", "-n", "elsewhere", "team=none")
        for attempt in (
            ("set", "image", "deployment/web", "app=web:9.9", "-n", NS),
            ("scale", "deployment/web", "--replicas=4", "-n", NS),
        ):
            refused = kubectl.run(*attempt, check=False)
            assert refused.returncode != 0, attempt
            assert "failed calling webhook" in refused.stderr, attempt
        assert _image(kubectl) != "web:9.9"
        # Restarted, the guard it registers listens at once to the namespaces holding protected
        # objects, never to every namespace until its first look (killed in between, it would
        # block Pods cluster-wide): the first version it writes is read from a watch.
        watch = kubectl.watch(
            "validatingwebhookconfigurations", "--field-selector=metadata.name=opsledger"
        )
        operator.start()
        wait_guarded(kubectl, NS, "web")
        first = Kubectl.versions(watch)[0]
        (listening,) = [
            c["expression"]
            for w in first["webhooks"]
            for c in w.get("matchConditions") or []
            if c["name"] == "namespaces-with-protected-objects"
        ]
        assert listening == f"request.namespace in ['{NS}']"
        operator.kill()
        kubectl("scale", "deployment/free", "--replicas=1", "-n", "elsewhere")
        kubectl("delete", "pods", "-n", "elsewhere", "--all", "--wait=false")
    finally:
        operator.start()


def test_stopping_the_operator_removes_its_webhook(
    kubectl: Kubectl, operator: OperatorProcess, shop_with_web: None
) -> None:
    operator.stop()
    gone = kubectl.run("get", "validatingwebhookconfiguration", "opsledger", check=False)
    assert gone.returncode != 0, "a webhook left behind would deadlock every Deployment update"
    mutating = kubectl.run("get", "mutatingwebhookconfiguration", "opsledger", check=False)
    assert mutating.returncode != 0, "nor may a mutating one block every new Change"
    kubectl("set", "image", "deployment/web", "app=web:1.3", "-n", NS)
    operator.start()
    wait_for(
        lambda: (
            kubectl.run(
                "get", "validatingwebhookconfiguration", "opsledger", check=False
            ).returncode
            == 0
        ),
        what="the webhook registered again",
    )
    again = kubectl.run("set", "image", "deployment/web", "app=web:1.4", "-n", NS, check=False)
    assert again.returncode != 0


def _served_serial(port: int) -> int:
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=5)
    return int(x509.load_pem_x509_certificate(pem.encode()).serial_number)


def test_a_renewed_serving_certificate_is_served_without_a_restart(
    devenv: DevEnvironment, kubectl: Kubectl, operator: OperatorProcess, shop_with_web: None
) -> None:
    """As cert-manager renews a Secret in place: the files change, the operator serves the new
    certificate within seconds, and the API server goes on calling the webhook."""
    env = devenv.env()
    port = int(env["OPSLEDGER_WEBHOOK_PORT"])
    before = _served_serial(port)
    renewed = (
        CertificateAuthority(devenv.pki)
        .ensure()
        .issue(
            "operator-webhook-renewed",
            common_name="opsledger-webhook",
            hosts=("127.0.0.1",),
            server=True,
        )
    )
    shutil.copyfile(renewed.key, env["OPSLEDGER_WEBHOOK_KEY_FILE"])
    shutil.copyfile(renewed.cert, env["OPSLEDGER_WEBHOOK_CERT_FILE"])
    serial = int(x509.load_pem_x509_certificate(renewed.cert.read_bytes()).serial_number)
    assert serial != before
    wait_for(lambda: _served_serial(port) == serial, timeout=40, what="the renewed certificate")
    refused = kubectl.run("set", "image", "deployment/web", "app=web:9.9", "-n", NS, check=False)
    assert refused.returncode != 0
    assert "guard.opsledger.io" in refused.stderr  # answered, over the new certificate
