"""The local environment: etcd, the Kubernetes control plane, kwok nodes, Prometheus,
Alertmanager and a bare Git repository as the CMDB remote, all on loopback.

`opsledger dev up` and the test suite's session fixture both use `DevEnvironment`.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from opsledger.devenv.paths import Toolbox, source_root
from opsledger.devenv.pki import CertificateAuthority, KeyPair, service_account_keys
from opsledger.devenv.processes import (
    Component,
    ProcessTable,
    StartError,
    free_ports,
    port_free,
)
from opsledger.devenv.rules import operator_rules

PORT_NAMES = (
    "etcd",
    "etcd-peer",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "prometheus",
    "alertmanager",
    "operator-metrics",
    "operator-health",
    "operator-receiver",
    "operator-webhook",
)
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
CONTROLLERS = "*,-nodeipam,-attachdetach,-persistentvolume-expander,-ttl"


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    port: int
    pid: int | None
    healthy: bool
    log: str


class DevEnvironment:
    """One local environment, kept in `state_dir` (ports, certificates, data, logs, PIDs)."""

    def __init__(
        self,
        state_dir: Path,
        tools: Toolbox,
        *,
        cluster: str = "dev",
        nodes: int = 3,
        out: TextIO = sys.stderr,
    ) -> None:
        self.dir = state_dir.resolve()
        self.tools = tools
        self.cluster = cluster
        self.node_count = nodes
        self.out = out
        self.table = ProcessTable(self.dir / "processes.json")
        self.pki = self.dir / "pki"
        self._started = time.monotonic()

    # -- layout ---------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    @property
    def cmdb_remote(self) -> Path:
        return self.dir / "cmdb.git"

    @property
    def rules_dir(self) -> Path:
        return self.dir / "prometheus" / "rules"

    @property
    def receiver_token_file(self) -> Path:
        """The bearer token Alertmanager sends to the operator's receiver."""
        return self.pki / "receiver.token"

    def ports(self) -> dict[str, int]:
        """Ports chosen on the first `up` and kept, so kubeconfigs and URLs stay valid."""
        path = self.dir / "ports.json"
        ports: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
        missing = [n for n in PORT_NAMES if n not in ports]
        if missing:
            ports.update(zip(missing, free_ports(len(missing)), strict=True))
            self.dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(ports, indent=2, sort_keys=True))
        return ports

    def url(self, name: str) -> str:
        scheme = "https" if name == "kube-apiserver" else "http"
        return f"{scheme}://127.0.0.1:{self.ports()[name]}"

    def env(self) -> dict[str, str]:
        """The variables `opsledger run`, kubectl and the tests use to reach this environment."""
        ports = self.ports()
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "OPSLEDGER_CLUSTER": self.cluster,
            "OPSLEDGER_CMDB_URL": self.cmdb_remote.as_uri(),
            "OPSLEDGER_CMDB_BRANCH": "main",
            "OPSLEDGER_CMDB_WORKDIR": str(self.dir / "cmdb-workdir"),
            "OPSLEDGER_PROMETHEUS_URL": self.url("prometheus"),
            "OPSLEDGER_ALERTMANAGER_URL": self.url("alertmanager"),
            "OPSLEDGER_METRICS_PORT": str(ports["operator-metrics"]),
            "OPSLEDGER_HEALTH_PORT": str(ports["operator-health"]),
            "OPSLEDGER_BIND_ADDRESS": "127.0.0.1",
            "OPSLEDGER_KUBECONFIG": str(self.dir / "operator.kubeconfig"),
            "OPSLEDGER_WEBHOOK_PORT": str(ports["operator-webhook"]),
            "OPSLEDGER_WEBHOOK_CERT_FILE": str(self.pki / "operator-webhook.crt"),
            "OPSLEDGER_WEBHOOK_KEY_FILE": str(self.pki / "operator-webhook.key"),
            "OPSLEDGER_WEBHOOK_CA_FILE": str(self.pki / "ca.crt"),
            "OPSLEDGER_WEBHOOK_REGISTER_URL": f"https://127.0.0.1:{ports['operator-webhook']}",
            "OPSLEDGER_RECEIVER_PORT": str(ports["operator-receiver"]),
            "OPSLEDGER_RECEIVER_TOKEN_FILE": str(self.receiver_token_file),
        }

    def path_entries(self) -> list[str]:
        return [str(p) for p in self.tools.path_entries()]

    # -- progress -------------------------------------------------------------------------

    def _say(self, message: str) -> None:
        print(f"[{time.monotonic() - self._started:6.1f}s] {message}", file=self.out, flush=True)

    # -- up / down / status ---------------------------------------------------------------

    def up(self) -> None:
        """Start whatever is not running, wait until every component is healthy. Idempotent."""
        self._started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_pki()
        components = self._components()
        for component in components:
            if self.table.pid(component.name) is not None:
                if component.health():
                    self._say(
                        f"{component.name}: already running (pid {self.table.pid(component.name)})"
                    )
                    continue
                self.table.wait_healthy(component)
                continue
            if not port_free(component.port):
                raise StartError(
                    f"{component.name}: port {component.port} is taken by another process; "
                    f"stop it, or remove {self.dir / 'ports.json'} to choose new ports"
                )
            self._say(f"{component.name}: starting on 127.0.0.1:{component.port}")
            pid = self.table.start(component)
            self.table.wait_healthy(component)
            self._say(f"{component.name}: healthy (pid {pid})")
            if component.name == "kube-apiserver":
                self._wait(self._rbac_bootstrapped, "RBAC bootstrap roles", 60)
        self._ensure_nodes()
        self._wait(self._nodes_ready, f"{self.node_count} kwok nodes Ready", 90)
        self._wait(self._default_service_account, "default service account", 60)
        self._ensure_cmdb_remote()
        self._say(f"environment up in {self.dir}")

    def down(self) -> list[str]:
        """Stop exactly the processes this environment started, newest first."""
        stopped = []
        for name in reversed(list(self.table.load())):
            if self.table.stop(name):
                stopped.append(name)
                self._say(f"{name}: stopped")
        return stopped

    def status(self) -> list[ComponentStatus]:
        result = []
        entries = self.table.load()
        for component in self._components(write=False):
            pid = self.table.pid(component.name)
            healthy = pid is not None and _quiet(component.health)
            log = str(entries.get(component.name, {}).get("log", component.log))
            result.append(ComponentStatus(component.name, component.port, pid, healthy, log))
        return result

    # -- the pieces -----------------------------------------------------------------------

    def _write_pki(self) -> None:
        ca = CertificateAuthority(self.pki).ensure()
        ca.issue(
            "kube-apiserver",
            common_name="kube-apiserver",
            hosts=(
                "127.0.0.1",
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "10.96.0.1",
            ),
            server=True,
        )
        service_account_keys(self.pki)
        if not self.receiver_token_file.exists():
            self.receiver_token_file.write_text(secrets.token_urlsafe(32) + "\n")
            self.receiver_token_file.chmod(0o600)
        ca.issue(
            "operator-webhook", common_name="opsledger-webhook", hosts=("127.0.0.1",), server=True
        )
        identities = {
            "admin": ("opsledger-admin", "system:masters"),
            # the operator's own identity: its requests pass the admission guard, a person's not
            "operator": ("opsledger-operator", "system:masters"),
            "kube-controller-manager": ("system:kube-controller-manager", None),
            "kube-scheduler": ("system:kube-scheduler", None),
        }
        for name, (cn, org) in identities.items():
            pair = ca.issue(f"{name}-client", common_name=cn, organization=org, client=True)
            path = self.kubeconfig if name == "admin" else self.dir / f"{name}.kubeconfig"
            if not path.exists():
                path.write_text(self._kubeconfig_text(pair, user=name))
                path.chmod(0o600)

    def _kubeconfig_text(self, pair: KeyPair, *, user: str) -> str:
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.cluster,
                    "cluster": {
                        "server": self.url("kube-apiserver"),
                        "certificate-authority-data": b64((self.pki / "ca.crt").read_bytes()),
                    },
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": b64(pair.cert_pem()),
                        "client-key-data": b64(pair.key_pem()),
                    },
                }
            ],
            "contexts": [
                {"name": self.cluster, "context": {"cluster": self.cluster, "user": user}}
            ],
            "current-context": self.cluster,
        }
        return yaml.safe_dump(doc, sort_keys=False)

    def _components(self, write: bool = True) -> list[Component]:
        p = self.ports()
        t = self.tools
        logs = self.dir / "logs"
        pki = self.pki
        components = [
            Component(
                "etcd",
                [
                    str(t.binary("etcd")),
                    "--name=opsledger",
                    f"--data-dir={self.dir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
                    f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
                    f"--listen-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
                    f"--initial-cluster=opsledger=http://127.0.0.1:{p['etcd-peer']}",
                    "--unsafe-no-fsync",  # a throw-away local store; durability is not the point
                    "--log-level=warn",
                ],
                p["etcd"],
                lambda: b'"true"' in _get(f"http://127.0.0.1:{p['etcd']}/health"),
                logs / "etcd.log",
            ),
            Component(
                "kube-apiserver",
                [
                    str(t.binary("kube-apiserver")),
                    f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={p['kube-apiserver']}",
                    "--endpoint-reconciler-type=none",
                    f"--tls-cert-file={pki / 'kube-apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'kube-apiserver.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    "--authorization-mode=Node,RBAC",
                    "--service-cluster-ip-range=10.96.0.0/16",
                    f"--cert-dir={self.dir / 'kube-apiserver'}",
                    "--profiling=false",
                    "--v=1",
                ],
                p["kube-apiserver"],
                lambda: _get(f"{self.url('kube-apiserver')}/readyz", self._admin_tls()) == b"ok",
                logs / "kube-apiserver.log",
            ),
            self._kube_component(
                "kube-controller-manager",
                [
                    f"--controllers={CONTROLLERS}",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                    f"--cluster-signing-key-file={pki / 'ca.key'}",
                    "--use-service-account-credentials=true",
                    "--node-monitor-grace-period=60s",
                ],
            ),
            self._kube_component("kube-scheduler", []),
            Component(
                "kwok",
                [
                    str(t.binary("kwok")),
                    f"--kubeconfig={self.kubeconfig}",
                    "--manage-all-nodes=false",
                    f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                    f"--config={self.dir / 'kwok' / 'stages.yaml'}",
                    f"--server-address=127.0.0.1:{p['kwok']}",
                ],
                p["kwok"],
                lambda: _get(f"http://127.0.0.1:{p['kwok']}/healthz") == b"ok",
                logs / "kwok.log",
            ),
            Component(
                "prometheus",
                [
                    str(t.binary("prometheus")),
                    f"--config.file={self.dir / 'prometheus' / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.dir / 'prometheus' / 'data'}",
                    f"--web.listen-address=127.0.0.1:{p['prometheus']}",
                    "--web.enable-lifecycle",
                    "--web.enable-admin-api",
                    "--storage.tsdb.retention.time=400d",
                    "--log.level=warn",
                ],
                p["prometheus"],
                lambda: _get(f"{self.url('prometheus')}/-/ready").startswith(b"Prometheus"),
                logs / "prometheus.log",
            ),
            Component(
                "alertmanager",
                [
                    str(t.alertmanager),
                    f"--config.file={self.dir / 'alertmanager' / 'alertmanager.yml'}",
                    f"--storage.path={self.dir / 'alertmanager' / 'data'}",
                    f"--web.listen-address=127.0.0.1:{p['alertmanager']}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                p["alertmanager"],
                lambda: _get(f"{self.url('alertmanager')}/-/ready").startswith(b"OK"),
                logs / "alertmanager.log",
            ),
        ]
        if write:
            self._write_kwok_config()
            self._write_prometheus_config()
            self._write_alertmanager_config()
        return components

    def _kube_component(self, name: str, extra: list[str]) -> Component:
        port = self.ports()[name]
        kubeconfig = self.dir / f"{name}.kubeconfig"
        return Component(
            name,
            [
                str(self.tools.binary(name)),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.dir / name}",
                "--leader-elect=false",
                *extra,
            ],
            port,
            lambda: _get(f"https://127.0.0.1:{port}/healthz", _insecure_tls()) == b"ok",
            self.dir / "logs" / f"{name}.log",
        )

    def _write_kwok_config(self) -> None:
        stages = self.tools.kwok_module / "kustomize" / "stage"
        files = [
            *sorted((stages / "node" / "fast").glob("*.yaml")),
            *sorted((stages / "node" / "heartbeat-with-lease").glob("*.yaml")),
            *sorted((stages / "pod" / "fast").glob("*.yaml")),
        ]
        docs = [f.read_text() for f in files if f.name != "kustomization.yaml"]
        target = self.dir / "kwok" / "stages.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n---\n".join(d.strip() for d in docs) + "\n")

    def _write_prometheus_config(self) -> None:
        p = self.ports()
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "rule_files": [str(self.rules_dir / "*.yml")],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{p['alertmanager']}"]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "prometheus",
                    "static_configs": [{"targets": [f"127.0.0.1:{p['prometheus']}"]}],
                },
                {
                    "job_name": "opsledger",
                    "static_configs": [
                        {
                            "targets": [f"127.0.0.1:{p['operator-metrics']}"],
                            "labels": {"cluster": self.cluster},
                        }
                    ],
                },
            ],
        }
        _write_yaml(self.dir / "prometheus" / "prometheus.yml", config)
        _write_yaml(self.rules_dir / "opsledger-operator.yml", operator_rules())

    def _write_alertmanager_config(self) -> None:
        p = self.ports()
        config = {
            "route": {
                "receiver": "opsledger",
                "group_by": ["alertname", "service"],
                "group_wait": "1s",
                "group_interval": "5s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "opsledger",
                    "webhook_configs": [
                        {
                            "url": f"http://127.0.0.1:{p['operator-receiver']}/alertmanager",
                            "send_resolved": True,
                            "http_config": {
                                "authorization": {
                                    "type": "Bearer",
                                    "credentials_file": str(self.receiver_token_file),
                                }
                            },
                        }
                    ],
                }
            ],
        }
        _write_yaml(self.dir / "alertmanager" / "alertmanager.yml", config)

    # -- cluster contents -----------------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Run the project's kubectl against this environment."""
        result = subprocess.run(
            [str(self.tools.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise StartError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _rbac_bootstrapped(self) -> bool:
        return b"ok" in _get(
            f"{self.url('kube-apiserver')}/readyz/poststarthook/rbac/bootstrap-roles",
            self._admin_tls(),
        )

    def _ensure_nodes(self) -> None:
        nodes: list[dict[str, Any]] = []
        for i in range(self.node_count):
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": f"kwok-node-{i}",
                        "annotations": {FAKE_NODE_ANNOTATION: "fake"},
                        "labels": {
                            "kubernetes.io/hostname": f"kwok-node-{i}",
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                            "topology.kubernetes.io/zone": f"zone-{i % 3}",
                        },
                    },
                    "status": {
                        "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                        "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                    },
                }
            )
        existing = set(self.kubectl("get", "nodes", "-o", "name").split())
        wanted = [n for n in nodes if f"node/{n['metadata']['name']}" not in existing]
        if wanted:
            docs = "\n---\n".join(yaml.safe_dump(n) for n in wanted)
            self.kubectl("create", "-f", "-", input=docs)
            self._say(f"kwok: created {len(wanted)} fake node(s)")

    def _nodes_ready(self) -> bool:
        out = self.kubectl(
            "get",
            "nodes",
            "-l",
            "type=kwok",
            "-o",
            'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
        )
        return out.split().count("True") >= self.node_count

    def _default_service_account(self) -> bool:
        return bool(
            self.kubectl(
                "get", "serviceaccount", "default", "-n", "default", "-o", "name", check=False
            )
        )

    def _ensure_cmdb_remote(self) -> None:
        if (self.cmdb_remote / "HEAD").exists():
            return
        _git("init", "--bare", "--initial-branch=main", str(self.cmdb_remote))
        template = source_root() / "cmdb-repo-template"
        with tempfile.TemporaryDirectory() as work:
            seed = Path(work) / "seed"
            shutil.copytree(template, seed)
            _git("init", "--initial-branch=main", cwd=seed)
            _git("add", "--all", cwd=seed)
            _git(
                "-c",
                "user.name=OpsLedger",
                "-c",
                "user.email=opsledger@localhost",
                "commit",
                "--quiet",
                "-m",
                "Initialise the CMDB from cmdb-repo-template",
                cwd=seed,
            )
            _git("push", "--quiet", str(self.cmdb_remote), "main", cwd=seed)
        self._say(f"cmdb: bare repository at {self.cmdb_remote}")

    def _wait(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _quiet(check):
                self._say(f"{what}: ok")
                return
            time.sleep(0.5)
        raise StartError(
            f"timed out after {timeout:.0f}s waiting for {what}; logs in {self.dir / 'logs'}"
        )

    def _admin_tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin-client.crt"), str(self.pki / "admin-client.key"))
        return ctx


def _insecure_tls() -> ssl.SSLContext:
    """For the health endpoints of components that serve a self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _get(url: str, context: ssl.SSLContext | None = None) -> bytes:
    with urllib.request.urlopen(url, timeout=2, context=context) as response:
        body: bytes = response.read()
        return body.strip()


def _quiet(check: Callable[[], Any]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False


def _write_yaml(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _git(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
