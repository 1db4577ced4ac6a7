"""What the chart renders: lint, the values schema, and that the pieces agree with the operator
(its webhook, its CRDs, its settings, its alerting rules, its metrics)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from opsledger.adapters.metrics import Metrics
from opsledger.devenv.environment import DevEnvironment
from opsledger.devenv.rules import operator_rules
from opsledger.models.settings import Settings
from opsledger.servers.admission import mutating_configuration, webhook_configuration
from tests.e2e.conftest import CHART, ROOT, VARIANTS, Helm, container, env_of, find

LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


@pytest.mark.parametrize("values", ["", *VARIANTS])
def test_chart_lints_strictly(helm: Helm, values: str) -> None:
    args = ["lint", "--strict", str(CHART)] + (["-f", str(CHART / "ci" / values)] if values else [])
    result = helm.run(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("replicas=two", "replicas"),
        ("webhook.failurePolicy=Sometimes", "failurePolicy"),
        ("webhok.enabled=false", "webhok"),  # a misspelt key is refused, not ignored
        ("discovery.kinds={Secret}", "kinds"),
        ("webhook.timeoutSeconds=60", "timeoutSeconds"),
        ("cluster=Prod EU", "cluster"),
    ],
)
def test_wrong_values_fail_at_install_naming_the_key(
    helm: Helm, setting: str, complaint: str
) -> None:
    result = helm.run("template", "ol", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert "schema" in result.stderr
    assert complaint in result.stderr


def test_credentials_without_their_secret_fail_with_a_clear_message(helm: Helm) -> None:
    result = helm.run(
        "template",
        "ol",
        str(CHART),
        "--set",
        "cmdb.url=ssh://git@git.example.com/cmdb.git",
        "--set",
        "cmdb.auth.type=ssh",
        "--set",
        "cmdb.auth.sshPrivateKey=KEY",
        check=False,
    )
    assert result.returncode != 0
    assert "cmdb.auth.knownHosts is required" in result.stderr
    # a token is for an HTTPS remote: an ssh URL with type token is refused by the schema
    result = helm.run(
        "template",
        "ol",
        str(CHART),
        "--set",
        "cmdb.url=git@git.example.com:cmdb.git",
        "--set",
        "cmdb.auth.type=token",
        "--set",
        "cmdb.auth.token=t",
        check=False,
    )
    assert result.returncode != 0
    assert "cmdb" in result.stderr


@pytest.mark.parametrize("values", ["", *VARIANTS])
def test_every_object_carries_the_recommended_labels(helm: Helm, values: str) -> None:
    docs = helm.template(*([values] if values else []))
    for doc in docs:
        labels = doc["metadata"].get("labels") or {}
        missing = [k for k in LABELS if k not in labels]
        assert not missing, f"{doc['kind']} {doc['metadata']['name']} lacks {missing}"
    pod = find(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert all(k in pod for k in LABELS)


def test_pod_is_restricted_and_the_root_filesystem_read_only(helm: Helm) -> None:
    docs = helm.template()
    deployment = find(docs, "Deployment")
    # Two peering replicas: one at a time replaced; a single one is recreated.
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }
    single = find(helm.template(sets=["replicas=1"]), "Deployment")
    assert single["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(docs)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in container(docs)["volumeMounts"]}
    env = env_of(docs)
    # git's HOME and the CMDB working copy live on a writable emptyDir
    work = mounts["/var/lib/opsledger"]
    assert {"name": work, "emptyDir": {}} in pod["volumes"]
    assert env["HOME"] == "/var/lib/opsledger"
    assert env["OPSLEDGER_CMDB_WORKDIR"].startswith("/var/lib/opsledger/")
    assert "/tmp" in mounts


def test_the_desk_runs_restricted_with_its_own_identity_that_only_reads_and_impersonates(
    helm: Helm,
) -> None:
    assert not [d for d in helm.template() if "desk" in d["metadata"]["name"]]  # off by default
    docs = helm.template(sets=["desk.enabled=true", "desk.trustedProxies={10.1.0.0/16}"])
    deployment = find(docs, "Deployment", "ol-opsledger-desk")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ol-opsledger-desk"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [desk] = pod["containers"]
    assert desk["args"] == ["desk"]
    assert desk["securityContext"]["readOnlyRootFilesystem"] is True
    assert desk["securityContext"]["allowPrivilegeEscalation"] is False
    assert desk["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e.get("value") for e in desk["env"]}
    assert env["OPSLEDGER_DESK_TRUSTED_PROXIES"] == "10.1.0.0/16"
    assert env["OPSLEDGER_DESK_ANONYMOUS_READ"] == "false"
    # Its pods are not the operator's: the operator's Service must not send webhooks to them.
    operator_selector = find(docs, "Service", "ol-opsledger")["spec"]["selector"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert not all(labels.get(k) == v for k, v in operator_selector.items())
    rules = find(docs, "ClusterRole", "ol-opsledger-desk")["rules"]
    verbs = {v for r in rules for v in r["verbs"]}
    assert verbs == {"get", "list", "watch", "impersonate", "create"}
    [create] = [r for r in rules if "create" in r["verbs"]]
    assert create["resources"] == ["tokenreviews"]  # it creates nothing else
    impersonated = [r for r in rules if "impersonate" in r["verbs"]]
    assert sorted(r["resources"][0] for r in impersonated) == ["groups", "users"]
    narrowed = helm.template(sets=["desk.enabled=true", "desk.impersonableGroups={team-shop,sre}"])
    groups = [
        r
        for r in find(narrowed, "ClusterRole", "ol-opsledger-desk")["rules"]
        if r["resources"] == ["groups"]
    ]
    assert groups[0]["resourceNames"] == ["team-shop", "sre"]
    key = find(docs, "Secret", "ol-opsledger-desk")["data"]["csrf-key"]
    assert len(base64.b64decode(key)) == 48
    assert "OPSLEDGER_DESK_CMDB_URL" not in env  # no history unless asked for

    # The record history: the CMDB's address and read-only credentials of their own.
    history = helm.template(
        sets=[
            "desk.enabled=true",
            "desk.history.enabled=true",
            "desk.history.secretName=cmdb-read-only",
            "cmdb.url=https://git.example.com/ops/cmdb.git",
            "cmdb.auth.type=token",
            "cmdb.auth.token=s3cret",
            "prometheus.url=http://prometheus.monitoring:9090",
        ]
    )
    pod = find(history, "Deployment", "ol-opsledger-desk")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["OPSLEDGER_DESK_CMDB_URL"] == "https://git.example.com/ops/cmdb.git"
    assert env["OPSLEDGER_CMDB_TOKEN_FILE"] == "/etc/opsledger/cmdb/token"
    assert env["HOME"] == "/tmp"
    assert env["OPSLEDGER_DESK_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["cmdb-credentials"]["secret"]["secretName"] == "cmdb-read-only"
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("ValidatingWebhookConfiguration", webhook_configuration),
        ("MutatingWebhookConfiguration", mutating_configuration),
    ],
)
def test_webhook_configuration_matches_what_the_operator_serves(
    helm: Helm, kind: str, make: Any
) -> None:
    docs = helm.template(sets=["webhook.timeoutSeconds=7", "webhook.excludeNamespaces={infra}"])
    rendered = find(docs, kind)["webhooks"]
    served = make(Settings(webhook_timeout=7), "https://unused", b"unused-ca")["webhooks"]
    assert [w["name"] for w in rendered] == [w["name"] for w in served]
    for ours, theirs in zip(rendered, served, strict=True):
        for key in ("rules", "sideEffects", "admissionReviewVersions", "failurePolicy"):
            assert sorted_rules(ours[key]) == sorted_rules(theirs[key]), key
        assert ours.get("reinvocationPolicy") == theirs.get("reinvocationPolicy")
        assert ours.get("objectSelector") == theirs.get("objectSelector")
        # The same conditions; the operator narrows the namespaces once it runs.
        assert ours.get("matchConditions") == theirs.get("matchConditions")
        assert ours["timeoutSeconds"] == 7
        assert ours["matchPolicy"] == theirs["matchPolicy"]
        # the path the operator's aiohttp routes serve, on the chart's Service
        path = theirs["clientConfig"]["url"].removeprefix("https://unused")
        assert ours["clientConfig"]["service"]["path"] == path
        assert ours["clientConfig"]["service"]["name"] == "ol-opsledger"
        excluded = ours["namespaceSelector"]["matchExpressions"][0]
        assert excluded["key"] == "kubernetes.io/metadata.name"
        assert excluded["operator"] == "NotIn"
        assert set(excluded["values"]) == {"kube-system", "opsledger-system", "infra"}


def find_all(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def sorted_rules(value: object) -> object:
    """Rules compared regardless of the order of their lists."""
    if isinstance(value, list):
        return sorted((sorted_rules(v) for v in value), key=json.dumps)
    if isinstance(value, dict):
        return {k: sorted_rules(v) for k, v in value.items()}
    return value


def test_generated_certificate_is_for_the_service_and_signed_by_the_ca_bundle(
    helm: Helm,
) -> None:
    docs = helm.template()
    secret = find(docs, "Secret", "ol-opsledger-webhook-tls")["data"]
    hook = find(docs, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert hook["clientConfig"]["caBundle"] == secret["ca.crt"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["tls.crt"]))
    cert.verify_directly_issued_by(ca)  # raises when the bundle did not sign it
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "ol-opsledger.opsledger-system.svc" in names.get_values_for_type(x509.DNSName)


def test_cert_manager_variant_asks_cert_manager_and_injects_its_ca(helm: Helm) -> None:
    docs = helm.template("cert-manager-values.yaml")
    cert = find(docs, "Certificate")
    assert cert["spec"]["secretName"] == "ol-opsledger-webhook-tls"
    assert "ol-opsledger.opsledger-system.svc" in cert["spec"]["dnsNames"]
    assert cert["spec"]["issuerRef"]["name"] == find(docs, "Issuer")["metadata"]["name"]
    config = find(docs, "ValidatingWebhookConfiguration")
    assert (
        config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        == "opsledger-system/ol-opsledger-webhook"
    )
    assert all("caBundle" not in w["clientConfig"] for w in config["webhooks"])
    # cert-manager writes the serving certificate's Secret; the chart only its redaction key
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"] == [
        "ol-opsledger-redaction"
    ]
    issuer = helm.template("cert-manager-issuer-values.yaml")
    assert not [d for d in issuer if d["kind"] == "Issuer"]
    assert find(issuer, "Certificate")["spec"]["issuerRef"]["kind"] == "ClusterIssuer"


def test_chart_crds_are_the_generated_crds_and_kept_on_uninstall(helm: Helm) -> None:
    rendered = {
        d["metadata"]["name"]: d
        for d in helm.template()
        if d["kind"] == "CustomResourceDefinition"
        and not d["metadata"]["name"].endswith("kopf.dev")
    }
    generated = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        generated[crd["metadata"]["name"]] = crd
    assert set(rendered) == set(generated)
    for name, crd in rendered.items():
        assert crd["spec"] == generated[name]["spec"], f"{name}: the chart's schema differs"
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # crds.install=false leaves out OpsLedger's CRDs (Kopf's peering ones follow
    # peering.installCRDs).
    without = helm.template(sets=["crds.install=false", "peering.installCRDs=false"])
    assert not [d for d in without if "Custom" in d["kind"]]


def test_settings_the_chart_sets_are_accepted_by_the_operator(helm: Helm) -> None:
    for values in ["", *VARIANTS]:
        docs = helm.template(*([values] if values else []))
        env = env_of(docs)
        assert all(not k.startswith("OPSLEDGER_") or k in KNOWN_VARIABLES for k in env), values
        settings = Settings.from_env(env)
        assert settings.kubeconfig is None  # in-cluster credentials
        assert settings.webhook_register_url is None  # the chart ships the configuration
        assert settings.operator_username == "system:serviceaccount:opsledger-system:ol-opsledger"


KNOWN_VARIABLES = {
    name
    for module in ("models/settings.py", "adapters/gitcmdb_credentials.py")
    for name in re.findall(
        r'"(OPSLEDGER_[A-Z_]+)"', (ROOT / "operator/opsledger" / module).read_text()
    )
}


def test_replicas_peer_with_distinct_priorities(helm: Helm, tmp_path: Path) -> None:
    docs = helm.template("peering-values.yaml", sets=["verbose=true"])
    assert find(docs, "ClusterKopfPeering")["metadata"]["name"] == "ol-opsledger"
    assert env_of(docs)["OPSLEDGER_PEERING"] == "ol-opsledger"
    # Run the container's command with a stand-in `opsledger` that prints what it was given.
    fake = tmp_path / "opsledger"
    fake.write_text('#!/bin/sh\necho "$OPSLEDGER_PRIORITY" "$@"\n')
    fake.chmod(0o755)
    command = container(docs)["command"] + container(docs)["args"]
    priorities = set()
    for pod in ("ol-opsledger-6d9c7b8f5-x2x9k", "ol-opsledger-6d9c7b8f5-qz7lm"):
        out = subprocess.run(
            command,
            env={"PATH": f"{tmp_path}:/usr/bin:/bin", "POD_NAME": pod},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert out[1:] == ["run", "--verbose"]
        priorities.add(Settings.from_env({"OPSLEDGER_PRIORITY": out[0]}).priority)
    assert len(priorities) == 2
    # one replica: no peering, the image's own entrypoint
    single = helm.template(sets=["replicas=1"])
    assert "command" not in container(single)
    assert "OPSLEDGER_PEERING" not in env_of(single)
    assert not [d for d in single if "KopfPeering" in d["kind"]]


def test_namespaced_variant_peers_and_executes_per_namespace(helm: Helm) -> None:
    docs = helm.template("namespaced-values.yaml")
    assert env_of(docs)["OPSLEDGER_NAMESPACES"] == "team-a,team-b"
    peerings = [d for d in docs if d["kind"] == "KopfPeering"]
    assert sorted(d["metadata"]["namespace"] for d in peerings) == ["team-a", "team-b"]
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in find_all(docs, "Role")}
    assert ("team-a", "ol-opsledger-execution") in roles
    assert ("team-b", "ol-opsledger-execution") not in roles
    cluster_rules = find(docs, "ClusterRole", "ol-opsledger")["rules"]
    assert not [r for r in cluster_rules if "patch" in r["verbs"] and "apps" in r["apiGroups"]]


def test_the_change_calendar_reaches_flux_and_argo_cd_only_when_asked(helm: Helm) -> None:
    """Off by default; with changeCalendar.flux and .argocd the operator may patch exactly the
    kinds it suspends or keeps in line: Kustomizations, HelmReleases, AppProjects."""

    def patched(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
        rules = find(docs, "ClusterRole", "ol-opsledger")["rules"]
        return {
            (group, resource)
            for r in rules
            if "patch" in r["verbs"]
            for group in r["apiGroups"]
            for resource in r["resources"]
            if group.endswith(("fluxcd.io", "argoproj.io"))
        }

    assert patched(helm.template()) == set()
    on = helm.template(sets=["changeCalendar.flux=true", "changeCalendar.argocd=true"])
    assert patched(on) == {
        ("kustomize.toolkit.fluxcd.io", "kustomizations"),
        ("helm.toolkit.fluxcd.io", "helmreleases"),
        ("argoproj.io", "appprojects"),
    }


def test_secrets_from_values_or_existing_secrets(helm: Helm) -> None:
    inline = helm.template("inline-credentials-values.yaml")
    cmdb = find(inline, "Secret", "ol-opsledger-cmdb")["data"]
    assert base64.b64decode(cmdb["token"]) == b"not-a-real-token"
    forge = find(inline, "Secret", "ol-opsledger-forge")["data"]
    assert base64.b64decode(forge["token"]) == b"not-a-real-forge-token"
    receiver = base64.b64decode(find(inline, "Secret", "ol-opsledger-receiver")["data"]["token"])
    assert len(receiver) >= 32  # generated
    env = env_of(inline)
    assert env["OPSLEDGER_CMDB_TOKEN_FILE"] == "/etc/opsledger/cmdb/token"
    assert env["OPSLEDGER_FORGE_TOKEN_FILE"] == "/etc/opsledger/forge/token"
    assert env["OPSLEDGER_RECEIVER_TOKEN_FILE"] == "/etc/opsledger/receiver/token"
    assert "@sha256:" in container(inline)["image"]
    key = base64.b64decode(find(inline, "Secret", "ol-opsledger-redaction")["data"]["key"])
    assert len(key) >= 32
    assert env["OPSLEDGER_REDACTION_KEY_FILE"] == "/etc/opsledger/redaction/key"
    assert env["OPSLEDGER_APPROVAL_MODE"] == "forge"  # a forge is configured: its reviews count
    assert env_of(helm.template())["OPSLEDGER_APPROVAL_MODE"] == "signed"  # none: signatures
    existing = helm.template("existing-secrets-values.yaml")
    assert sorted(d["metadata"]["name"] for d in existing if d["kind"] == "Secret") == [
        "ol-opsledger-redaction",  # the fingerprint key: generated, never a value
        "ol-opsledger-webhook-tls",
    ]
    volumes = {
        v["name"]: v["secret"]["secretName"]
        for v in find(existing, "Deployment")["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }
    assert volumes["cmdb-credentials"] == "opsledger-cmdb-ssh"
    assert volumes["forge-token"] == "opsledger-forge"
    assert volumes["receiver-token"] == "opsledger-receiver"
    env = env_of(existing)
    assert env["OPSLEDGER_CMDB_SSH_KEY_FILE"] == "/etc/opsledger/cmdb/ssh-privatekey"
    assert env["OPSLEDGER_CMDB_KNOWN_HOSTS_FILE"] == "/etc/opsledger/cmdb/known_hosts"
    service = find(existing, "Service")["spec"]["ports"]
    receiver_port = {"name": "receiver", "port": 9103, "targetPort": "receiver", "protocol": "TCP"}
    assert receiver_port in service


def test_alerting_rules_are_the_operators_own_and_valid(
    helm: Helm, devenv: DevEnvironment, tmp_path: Path
) -> None:
    docs = helm.template(sets=["metrics.prometheusRule.enabled=true"])
    groups = find(docs, "PrometheusRule")["spec"]["groups"]
    assert groups == operator_rules(job="ol-opsledger")["groups"]
    variant = find(helm.template("cert-manager-values.yaml"), "PrometheusRule")["spec"]
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(variant))
    check = subprocess.run(
        [str(devenv.tools.binary("promtool")), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    expected = sum(len(g["rules"]) for g in variant["groups"])
    assert expected >= len(groups[0]["rules"])  # the operator's own, and the variant's extras
    assert f"{expected} rules found" in check.stdout


def test_dashboard_queries_parse_and_use_the_operators_metrics(
    helm: Helm, devenv: DevEnvironment, tmp_path: Path
) -> None:
    docs = helm.template(sets=["metrics.dashboard.enabled=true"])
    config = find(docs, "ConfigMap", "ol-opsledger-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["opsledger.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    suffix = {"counter": "_total", "info": "_info"}
    exported = {
        family.name + suffix.get(family.type, "") for family in Metrics().registry.collect()
    } | {"up"}
    for expr in exprs:
        for name in re.findall(r"\b(opsledger_[a-z_]+|up)\b(?=[{\[ )]|$)", expr):
            assert name in exported, f"{name} is not a metric the operator exports"
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": e.replace("$job", ".*")}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump(rules))
    check = subprocess.run(
        [str(devenv.tools.binary("promtool")), "check", "rules", str(tmp_path / "queries.yaml")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
    )
    assert check.returncode == 0, check.stdout + check.stderr
