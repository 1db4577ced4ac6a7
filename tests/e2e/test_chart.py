"""The chart against the real API server: every variant validated server-side, then one release
installed into a namespace that enforces the restricted Pod Security level, its identity
checked with `kubectl auth can-i` and used to run the operator for real, upgraded (values and a
CRD), and uninstalled without leaving a webhook behind."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.processes import free_ports, stop_child
from tests.e2e.conftest import CHART, ROOT, VARIANTS, Helm
from tests.support import Kubectl, wait_for

NAMESPACE = "opsledger-system"
RELEASE = "ol"
NAME = "ol-opsledger"  # the release's full name: Deployment, ServiceAccount, ClusterRole, …
SA = f"system:serviceaccount:{NAMESPACE}:{NAME}"
CLUSTER = "chart-e2e"
OPSLEDGER_CRDS = [
    f"{yaml.safe_load(p.read_text())['metadata']['name']}"
    for p in sorted((ROOT / "crds").glob("*"))
]


# -- every variant, validated by the API server ---------------------------------------------


@pytest.mark.parametrize("values", ["", *VARIANTS])
def test_rendered_manifests_are_accepted_by_the_api_server(
    helm: Helm, kubectl: Kubectl, crds: None, variant_crds: None, values: str
) -> None:
    for namespace in ("team-a", "team-b", "incidents", NAMESPACE):
        ensure_namespace(kubectl, namespace)
    docs = helm.template(*([values] if values else []), release=RELEASE, namespace=NAMESPACE)
    # Kinds the chart brings its own CRDs for (Kopf's peering) need them served before their
    # objects can be validated: those CRDs are applied for real, everything else as a dry run.
    own = [
        d
        for d in docs
        if d["kind"] == "CustomResourceDefinition" and d["metadata"]["name"] not in OPSLEDGER_CRDS
    ]
    fresh = [
        d
        for d in own
        if kubectl.run("get", "crd", d["metadata"]["name"], check=False).returncode != 0
    ]
    if fresh:
        kubectl("apply", "-f", "-", input=stream(fresh))
        kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "-f", "-", input=stream(fresh)
        )
    try:
        result = kubectl.run(
            "apply",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            "-",
            input=stream(docs),
            check=False,
        )
    finally:  # gone again, so that the release below installs them as its own
        if fresh:
            kubectl("delete", "-f", "-", "--wait=true", input=stream(fresh))
    assert result.returncode == 0, result.stderr
    accepted = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(accepted) == len(docs), result.stdout


# -- one release, installed, used, upgraded and uninstalled ---------------------------------


@pytest.fixture(scope="module")
def release(
    helm: Helm, kubectl: Kubectl, devenv: DevEnvironment, crds: None
) -> Iterator[subprocess.CompletedProcess[str]]:
    """The chart installed as `ol` in a restricted namespace, pointed at the local environment's
    Prometheus, Alertmanager and CMDB remote. The webhook's failurePolicy is Ignore here: the
    operator's pod is simulated by kwok and answers nobody, and with Fail every Deployment
    written in this test session would be refused while the release exists."""
    ensure_namespace(kubectl, NAMESPACE)
    kubectl(
        "label",
        "namespace",
        NAMESPACE,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
        "--overwrite",
    )
    adopt_crds(kubectl)
    installed = helm.run(
        "install",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--set",
        f"cluster={CLUSTER}",
        "--set",
        f"cmdb.url={devenv.cmdb_remote.as_uri()}",
        "--set",
        f"prometheus.url={devenv.url('prometheus')}",
        "--set",
        f"alertmanager.url={devenv.url('alertmanager')}",
        "--set",
        "receiver.enabled=true",
        "--set",
        "desk.enabled=true",
        "--set",
        "webhook.failurePolicy=Ignore",
        "--set",
        "webhook.timeoutSeconds=2",
        "--force-conflicts",  # the CRDs were applied with kubectl before (adopt_crds)
        "--wait",
        "--timeout",
        "3m",
    )
    yield installed
    if helm.run("status", RELEASE, "-n", NAMESPACE, check=False).returncode == 0:
        helm.run("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)


def test_install_into_a_restricted_namespace(
    release: subprocess.CompletedProcess[str], kubectl: Kubectl
) -> None:
    # The namespace really enforces restricted: a pod that does not say runAsNonRoot is refused.
    refused = kubectl.run(
        "run", "not-restricted", "--image=busybox", "-n", NAMESPACE, "--restart=Never", check=False
    )
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr
    assert "restricted:latest" in refused.stderr
    # …and the operator's pod was admitted and created from the Deployment (kwok runs it).
    pods = kubectl.json(
        "get", "pods", "-n", NAMESPACE,
        "-l", "app.kubernetes.io/instance=ol,app.kubernetes.io/component=operator",
    )  # fmt: skip
    assert len(pods["items"]) == 2
    assert pods["items"][0]["status"]["phase"] == "Running"
    deployment = kubectl.json("get", "deployment", NAME, "-n", NAMESPACE)
    # Two replicas by default: peering, one at a time replaced, one kept through disruptions.
    assert deployment["status"]["availableReplicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    pdb = kubectl.json("get", "poddisruptionbudget", NAME, "-n", NAMESPACE)
    assert pdb["spec"]["maxUnavailable"] == 1
    affinity = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 100
    env = {e["name"]: e.get("value") for e in deployment_env(deployment)}
    assert env["OPSLEDGER_CLUSTER"] == CLUSTER
    assert env["OPSLEDGER_CMDB_URL"].startswith("file://")
    assert env["OPSLEDGER_PROMETHEUS_URL"].startswith("http://127.0.0.1:")
    # The service desk's pod was admitted under restricted too, with its own identity.
    desk = kubectl.json("get", "deployment", f"{NAME}-desk", "-n", NAMESPACE)
    assert desk["status"]["availableReplicas"] == 1
    assert desk["spec"]["template"]["spec"]["serviceAccountName"] == f"{NAME}-desk"
    # The objects a user would look for
    for kind, name in (
        ("serviceaccount", NAME),
        ("service", NAME),
        ("secret", f"{NAME}-webhook-tls"),
        ("secret", f"{NAME}-receiver"),
    ):
        kubectl("get", kind, name, "-n", NAMESPACE)
    kubectl("get", "clusterrole", NAME)
    kubectl("get", "clusterrolebinding", NAME)
    ports = {
        p["name"]: p["port"]
        for p in kubectl.json("get", "service", NAME, "-n", NAMESPACE)["spec"]["ports"]
    }
    assert ports == {"metrics": 9102, "webhook": 443, "receiver": 9103}
    config = kubectl.json("get", "validatingwebhookconfiguration", NAME)
    ca = kubectl.json("get", "secret", f"{NAME}-webhook-tls", "-n", NAMESPACE)["data"]["ca.crt"]
    assert [w["name"] for w in config["webhooks"]] == [
        "guard.opsledger.io",
        "guard-subresources.opsledger.io",
        "validate.opsledger.io",
    ]
    assert all(w["clientConfig"]["caBundle"] == ca for w in config["webhooks"])
    for name in OPSLEDGER_CRDS:
        crd = kubectl.json("get", "crd", name)
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    # NOTES.txt tells the next three commands
    notes = release.stdout
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{NAME}" in notes
    assert "kubectl apply -f examples/" in notes
    assert "kubectl get itsm -A" in notes


YES = [
    # its own kinds: watched, patched (finalizers, annotations), status written
    ("watch", "changes.opsledger.io"),
    ("list", "servicelevels.opsledger.io"),
    ("patch", "configurationitems.opsledger.io"),
    ("patch", "incidents.opsledger.io", "--subresource=status"),
    ("patch", "changes.opsledger.io", "--subresource=status"),
    ("create", "incidents.opsledger.io"),
    # whether an emergency change's creator may break glass
    ("create", "subjectaccessreviews.authorization.k8s.io"),
    # Kopf's discovery and the start-up check
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("get", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "events", "-n", "shop"),
    # the kinds items follow: read only
    ("watch", "deployments.apps"),
    ("list", "statefulsets.apps"),
    ("watch", "services"),
    ("watch", "nodes"),
    ("watch", "namespaces"),
    ("list", "persistentvolumeclaims"),
    ("watch", "persistentvolumes"),
    ("list", "pods", "-A"),  # the nodes a workload's pods run on
    ("get", "pods", "-n", "shop"),  # a Pod's owners, when someone deletes it or execs into it
    # the guard's label on protecting items' sources (metadata; RBAC cannot say "only labels")
    ("patch", "cronjobs.batch", "-n", "shop"),
    ("watch", "ingresses.networking.k8s.io"),
    # change-plan execution (rbac.execution, on by default)
    ("patch", "deployments.apps", "-n", "shop"),
    ("update", "statefulsets.apps", "-n", "shop"),
]
NO = [
    ("get", "secrets", "-A"),
    ("get", "secrets", "-n", NAMESPACE),
    ("list", "secrets", "-n", "kube-system"),
    ("create", "configurationitems.opsledger.io", "-n", "shop"),  # discovery is off
    ("delete", "changes.opsledger.io", "-n", "shop"),
    ("update", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "deployments.apps", "-n", "shop"),
    ("delete", "deployments.apps", "-n", "shop"),
    ("patch", "services", "-n", "shop"),
    ("patch", "nodes"),
    ("watch", "pods", "-A"),
    ("get", "configmaps", "-n", "shop"),
    ("create", "pods/exec", "-n", "shop"),
    ("create", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
    ("create", "changes.opsledger.io", "--subresource=emergency", "-n", "shop"),  # no break-glass
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("patch", "clusterkopfpeerings.kopf.dev"),  # only its own peering object, by name
    ("create", "prometheusrules.monitoring.coreos.com", "-n", "shop"),  # slo.prometheusRules off
]


def test_the_operators_identity_can_do_what_it_needs_and_no_more(
    release: subprocess.CompletedProcess[str], kubectl: Kubectl
) -> None:
    denied = [q for q in YES if not can_i(kubectl, *q)]
    assert not denied, f"{SA} cannot {denied}"
    allowed = [q for q in NO if can_i(kubectl, *q)]
    assert not allowed, f"{SA} should not be able to {allowed}"


def test_the_operator_runs_with_the_charts_identity_and_settings(
    release: subprocess.CompletedProcess[str],
    kubectl: Kubectl,
    devenv: DevEnvironment,
    tmp_path: Path,
) -> None:
    """`opsledger run` with the service account's token and the Deployment's own env (its files
    taken from the release's Secrets) reconciles an item, commits it to the CMDB remote, serves
    the webhook with the chart's certificate and the receiver with its token."""
    deployment = kubectl.json("get", "deployment", NAME, "-n", NAMESPACE)
    env, files = local_settings(deployment, kubectl, devenv, tmp_path)
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "opsledger", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        health = f"http://127.0.0.1:{env['OPSLEDGER_HEALTH_PORT']}/healthz"
        wait_for(lambda: answers(health, proc, log), timeout=60, what=f"/healthz ({log})")
        ensure_namespace(kubectl, "chart-shop")
        kubectl("create", "deployment", "web", "--image=nginx", "-n", "chart-shop")
        kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "opsledger.io/v1alpha1",
                    "kind": "ConfigurationItem",
                    "metadata": {"name": "web", "namespace": "chart-shop"},
                    "spec": {
                        "class": "Application",
                        "source": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    },
                }
            ),
        )
        wait_for(
            lambda: conditions(kubectl, "ci", "web", "chart-shop").get("CMDBSynced") == "True",
            timeout=60,
            what=f"the item committed to the CMDB ({log})",
        )
        record = subprocess.run(
            [
                "git",
                "--git-dir",
                str(devenv.cmdb_remote),
                "show",
                f"main:clusters/{CLUSTER}/chart-shop/configurationitems/web.yaml",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "kind: Deployment" in record

        # The webhook serves the chart's certificate, valid for the name the API server uses.
        port = int(env["OPSLEDGER_WEBHOOK_PORT"])
        tls = ssl.create_default_context(cafile=files["webhook/ca.crt"])
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            tls.wrap_socket(raw, server_hostname=f"{NAME}.{NAMESPACE}.svc") as verified,
        ):
            assert verified.getpeercert()
        # …and answers /validate with what it reads through its own identity.
        tls.check_hostname = False  # connected by IP; the name was checked above
        request = urllib.request.Request(
            f"https://127.0.0.1:{port}/validate",
            data=json.dumps(admission_review_of_a_change_with_a_missing_target()).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=tls, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["response"]["allowed"] is False
        assert "no-such-item" in answer["response"]["status"]["message"]

        # The receiver refuses a request without the release's token.
        receiver = f"http://127.0.0.1:{env['OPSLEDGER_RECEIVER_PORT']}/alertmanager"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(receiver, data=b"{}"), timeout=10)
        assert refused.value.code == 401
    finally:
        stop_child(proc)
        kubectl.run("delete", "namespace", "chart-shop", "--wait=false", check=False)
    output = log.read_text(errors="replace")
    assert "Forbidden" not in output, output[-3000:]
    assert " 403" not in output, output[-3000:]


def test_upgrade_changes_values_and_a_crd(
    release: subprocess.CompletedProcess[str],
    helm: Helm,
    kubectl: Kubectl,
    tmp_path: Path,
) -> None:
    before = {
        name: kubectl.json("get", "secret", name, "-n", NAMESPACE)["data"]
        for name in (f"{NAME}-webhook-tls", f"{NAME}-receiver")
    }
    # A newer chart: the Incident CRD gains a printer column.
    chart = tmp_path / "opsledger"
    shutil.copytree(CHART, chart)
    crd_file = chart / "files" / "crds" / "opsledger.io_incidents.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    crd["spec"]["versions"][0]["additionalPrinterColumns"].append(
        {"name": "Title", "type": "string", "jsonPath": ".spec.title", "priority": 1}
    )
    crd_file.write_text(yaml.safe_dump(crd, sort_keys=False))
    ensure_namespace(kubectl, "team-a")
    helm(
        "upgrade",
        RELEASE,
        str(chart),
        "-n",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "replicas=2",
        "--set",
        "discovery.enabled=true",
        "--set",
        "rbac.execution.namespaces={team-a}",
        "--set",
        "slo.prometheusRules.enabled=true",
        "--set",
        "slo.prometheusRules.labels.release=kube-prometheus-stack",
        "--force-conflicts",  # the CRDs were applied with kubectl before (adopt_crds)
        "--wait",
        "--timeout",
        "3m",
    )
    columns = kubectl.json("get", "crd", "incidents.opsledger.io")["spec"]["versions"][0][
        "additionalPrinterColumns"
    ]
    assert {"name": "Title", "type": "string", "jsonPath": ".spec.title", "priority": 1} in columns
    # Two replicas, both admitted in the restricted namespace, peering.
    deployment = kubectl.json("get", "deployment", NAME, "-n", NAMESPACE)
    assert deployment["status"]["availableReplicas"] == 2
    env = {e["name"]: e.get("value") for e in deployment_env(deployment)}
    assert env["OPSLEDGER_PEERING"] == NAME
    kubectl("get", "clusterkopfpeering", NAME)
    assert can_i(kubectl, "patch", f"clusterkopfpeerings.kopf.dev/{NAME}")
    assert not can_i(kubectl, "patch", "clusterkopfpeerings.kopf.dev/someone-else")
    # Discovery on: items may be created. Execution narrowed to team-a.
    assert can_i(kubectl, "create", "configurationitems.opsledger.io", "-n", "shop")
    assert can_i(kubectl, "update", "deployments.apps", "-n", "team-a")
    assert not can_i(kubectl, "update", "deployments.apps", "-n", "shop")
    # (patch stays: the guard labels protecting items' sources everywhere)
    assert can_i(kubectl, "patch", "deployments.apps", "-n", "shop")
    # A PrometheusRule beside every ServiceLevel: the setting, its labels and the right to.
    assert env["OPSLEDGER_SLO_PROMETHEUS_RULES"] == "true"
    assert env["OPSLEDGER_SLO_RULE_LABELS"] == "release=kube-prometheus-stack"
    for verb in ("get", "create", "patch", "delete"):
        assert can_i(kubectl, verb, "prometheusrules.monitoring.coreos.com", "-n", "shop"), verb
    assert not can_i(kubectl, "get", "servicemonitors.monitoring.coreos.com", "-n", "shop")
    # The certificate and the receiver's generated token survive the upgrade.
    for name, data in before.items():
        assert kubectl.json("get", "secret", name, "-n", NAMESPACE)["data"] == data, name


def test_uninstall_leaves_no_webhook_configuration_behind(
    release: subprocess.CompletedProcess[str], helm: Helm, kubectl: Kubectl
) -> None:
    helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    assert kubectl.run("get", "validatingwebhookconfiguration", NAME, check=False).returncode != 0
    assert kubectl.run("get", "clusterrole", NAME, check=False).returncode != 0
    assert kubectl.run("get", "deployment", NAME, "-n", NAMESPACE, check=False).returncode != 0
    # No admission deadlock: Deployments can be written anywhere again at once.
    ensure_namespace(kubectl, "after-uninstall")
    kubectl("create", "deployment", "free", "--image=nginx", "-n", "after-uninstall")
    # The CRDs stay (helm.sh/resource-policy: keep), and so does everything of their kinds.
    for name in OPSLEDGER_CRDS:
        kubectl("get", "crd", name)
    kubectl("delete", "namespace", "after-uninstall", "--wait=false")


# -- helpers ----------------------------------------------------------------------------------


def stream(docs: list[dict[str, Any]]) -> str:
    return "---\n".join(yaml.safe_dump(d) for d in docs)


def ensure_namespace(kubectl: Kubectl, name: str) -> None:
    if kubectl.run("get", "namespace", name, check=False).returncode != 0:
        kubectl("create", "namespace", name)


def adopt_crds(kubectl: Kubectl) -> None:
    """CRDs installed earlier with `kubectl apply -f crds/` become the release's (the README's
    migration path): Helm adopts objects that carry its ownership metadata. kubectl still
    co-owns their fields, so Helm's server-side apply needs --force-conflicts to change them."""
    for name in OPSLEDGER_CRDS:
        if kubectl.run("get", "crd", name, check=False).returncode != 0:
            continue
        kubectl("label", "crd", name, "app.kubernetes.io/managed-by=Helm", "--overwrite")
        kubectl(
            "annotate",
            "crd",
            name,
            f"meta.helm.sh/release-name={RELEASE}",
            f"meta.helm.sh/release-namespace={NAMESPACE}",
            "--overwrite",
        )


def can_i(kubectl: Kubectl, verb: str, resource: str, *scope: str) -> bool:
    extra = list(scope) or ["-A"]
    if "--subresource=status" in extra:
        extra = [a for a in extra if a != "--subresource=status"] or ["-A"]
        extra.append("--subresource=status")
    result = kubectl.run("auth", "can-i", verb, resource, f"--as={SA}", *extra, check=False)
    return result.stdout.strip() == "yes"


def deployment_env(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


def conditions(kubectl: Kubectl, kind: str, name: str, namespace: str) -> dict[str, str]:
    obj = kubectl.json("get", kind, name, "-n", namespace)
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


def answers(url: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"the operator exited with {proc.returncode}:\n{log.read_text()}")
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def local_settings(
    deployment: dict[str, Any], kubectl: Kubectl, devenv: DevEnvironment, tmp_path: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """The Deployment's env for a process on this machine: the service account's token in a
    kubeconfig, the mounted Secrets as files under tmp_path, free ports on loopback."""
    pod = deployment["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    files: dict[str, str] = {}
    rewrite = {"/var/lib/opsledger": str(tmp_path / "work")}
    for volume in pod["volumes"]:
        if "secret" not in volume:
            continue
        secret = kubectl.json("get", "secret", volume["secret"]["secretName"], "-n", NAMESPACE)
        folder = tmp_path / "etc" / volume["name"]
        folder.mkdir(parents=True)
        for key, value in secret["data"].items():
            (folder / key).write_bytes(base64.b64decode(value))
            files[f"{Path(mounts[volume['name']]).name}/{key}"] = str(folder / key)
        rewrite[mounts[volume["name"]]] = str(folder)
    (tmp_path / "work").mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "KUBECONFIG": service_account_kubeconfig(kubectl, devenv, tmp_path),
    }
    for item in deployment_env(deployment):
        if "value" not in item:
            continue
        value = item["value"]
        for prefix, local in rewrite.items():
            if value.startswith(prefix):
                value = local + value[len(prefix) :]
        env[item["name"]] = value
    ports = free_ports(4)
    for var, port in zip(
        (
            "OPSLEDGER_METRICS_PORT",
            "OPSLEDGER_HEALTH_PORT",
            "OPSLEDGER_WEBHOOK_PORT",
            "OPSLEDGER_RECEIVER_PORT",
        ),
        ports,
        strict=True,
    ):
        assert var in env, f"the chart does not set {var}"
        env[var] = str(port)
    env["OPSLEDGER_BIND_ADDRESS"] = "127.0.0.1"
    env["OPSLEDGER_CMDB_DEBOUNCE"] = "0.2"
    return env, files


def service_account_kubeconfig(kubectl: Kubectl, devenv: DevEnvironment, tmp_path: Path) -> str:
    token = kubectl("create", "token", NAME, "-n", NAMESPACE, "--duration=1h").strip()
    admin = yaml.safe_load(devenv.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    path = tmp_path / "operator.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": cluster}],
                "users": [{"name": NAME, "user": {"token": token}}],
                "contexts": [{"name": "local", "context": {"cluster": "local", "user": NAME}}],
                "current-context": "local",
            }
        )
    )
    assert (
        kubectl(
            "--kubeconfig",
            str(path),
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        )
        == SA
    )
    return str(path)


def admission_review_of_a_change_with_a_missing_target() -> dict[str, Any]:
    change = {
        "apiVersion": "opsledger.io/v1alpha1",
        "kind": "Change",
        "metadata": {"name": "upgrade-web", "namespace": "chart-shop"},
        "spec": {
            "type": "normal",
            "summary": "Upgrade web",
            "service": "shop",
            "targets": ["no-such-item"],
            "requester": {"username": "alice", "groups": []},  # as the mutating webhook wrote it
        },
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "6f1b1f7e-0000-4000-8000-000000000001",
            "kind": {"group": "opsledger.io", "version": "v1alpha1", "kind": "Change"},
            "resource": {"group": "opsledger.io", "version": "v1alpha1", "resource": "changes"},
            "namespace": "chart-shop",
            "name": "upgrade-web",
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": change,
        },
    }
