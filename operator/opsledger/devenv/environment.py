"""The local environment: etcd, the Kubernetes control plane, kwok nodes, Prometheus,
Alertmanager and a bare Git repository as the CMDB remote, all on loopback.

`opsledger dev up` and the test suite's session fixture both use `DevEnvironment`. It only
composes the pieces: the layout of its state folder, the ports, and the order of start-up; each
component is defined in its own module (`control_plane`, `kwok`, `monitoring`, `cmdb_remote`,
`credentials`) from the paths and ports passed to it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from opsledger.devenv import control_plane, kwok, monitoring
from opsledger.devenv.cmdb_remote import ensure_cmdb_remote
from opsledger.devenv.credentials import CLIENT_IDENTITIES, CredentialFiles, write_credentials
from opsledger.devenv.kubeconfig import Kubectl
from opsledger.devenv.paths import Toolbox
from opsledger.devenv.ports import PORT_NAMES, persistent_ports
from opsledger.devenv.probes import quiet, wait_until
from opsledger.devenv.processes import Component, ProcessTable, StartError, port_free


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
        self._credentials = CredentialFiles(self.pki)
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
        return self._credentials.receiver_token

    def ports(self) -> dict[str, int]:
        """Ports chosen on the first `up` and kept, so kubeconfigs and URLs stay valid."""
        return persistent_ports(self.dir / "ports.json", PORT_NAMES)

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
            "OPSLEDGER_WEBHOOK_CERT_FILE": str(self._credentials.webhook.cert),
            "OPSLEDGER_WEBHOOK_KEY_FILE": str(self._credentials.webhook.key),
            "OPSLEDGER_WEBHOOK_CA_FILE": str(self._credentials.ca.cert),
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
        self._write_configs()
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
        created = kwok.ensure_nodes(self.kubectl, self.node_count)
        if created:
            self._say(f"kwok: created {created} fake node(s)")
        self._wait(
            lambda: kwok.nodes_ready(self.kubectl, self.node_count),
            f"{self.node_count} kwok nodes Ready",
            90,
        )
        self._wait(
            lambda: control_plane.default_service_account(self.kubectl),
            "default service account",
            60,
        )
        if ensure_cmdb_remote(self.cmdb_remote):
            self._say(f"cmdb: bare repository at {self.cmdb_remote}")
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
        for component in self._components():
            pid = self.table.pid(component.name)
            healthy = pid is not None and quiet(component.health)
            log = str(entries.get(component.name, {}).get("log", component.log))
            result.append(ComponentStatus(component.name, component.port, pid, healthy, log))
        return result

    # -- the pieces -----------------------------------------------------------------------

    def _write_pki(self) -> None:
        write_credentials(
            self._credentials,
            kubeconfigs={name: self._kubeconfig_of(name) for name in CLIENT_IDENTITIES},
            cluster=self.cluster,
            server=self.url("kube-apiserver"),
        )

    def _kubeconfig_of(self, identity: str) -> Path:
        return self.kubeconfig if identity == "admin" else self.dir / f"{identity}.kubeconfig"

    def _components(self) -> list[Component]:
        """The components in start order (building them writes nothing)."""
        p = self.ports()
        t = self.tools
        logs = self.dir / "logs"
        creds = self._credentials
        return [
            control_plane.etcd(
                t.binary("etcd"),
                data_dir=self.dir / "etcd",
                port=p["etcd"],
                peer_port=p["etcd-peer"],
                log=logs / "etcd.log",
            ),
            control_plane.kube_apiserver(
                t.binary("kube-apiserver"),
                port=p["kube-apiserver"],
                etcd_port=p["etcd"],
                serving=creds.api_server,
                client_ca=creds.ca.cert,
                service_account=creds.service_account,
                admin=creds.client("admin"),
                cert_dir=self.dir / "kube-apiserver",
                log=logs / "kube-apiserver.log",
            ),
            control_plane.kube_controller_manager(
                t.binary("kube-controller-manager"),
                port=p["kube-controller-manager"],
                kubeconfig=self._kubeconfig_of("kube-controller-manager"),
                ca=creds.ca,
                service_account=creds.service_account,
                cert_dir=self.dir / "kube-controller-manager",
                log=logs / "kube-controller-manager.log",
            ),
            control_plane.kube_scheduler(
                t.binary("kube-scheduler"),
                port=p["kube-scheduler"],
                kubeconfig=self._kubeconfig_of("kube-scheduler"),
                cert_dir=self.dir / "kube-scheduler",
                log=logs / "kube-scheduler.log",
            ),
            kwok.kwok(
                t.binary("kwok"),
                kubeconfig=self.kubeconfig,
                config=self._kwok_stages,
                port=p["kwok"],
                log=logs / "kwok.log",
            ),
            monitoring.prometheus(
                t.binary("prometheus"),
                config=self.dir / "prometheus" / "prometheus.yml",
                data=self.dir / "prometheus" / "data",
                port=p["prometheus"],
                log=logs / "prometheus.log",
            ),
            monitoring.alertmanager(
                t.alertmanager,
                config=self.dir / "alertmanager" / "alertmanager.yml",
                data=self.dir / "alertmanager" / "data",
                port=p["alertmanager"],
                log=logs / "alertmanager.log",
            ),
        ]

    @property
    def _kwok_stages(self) -> Path:
        return self.dir / "kwok" / "stages.yaml"

    def _write_configs(self) -> None:
        p = self.ports()
        kwok.write_stages(self.tools.kwok_module, self._kwok_stages)
        monitoring.write_prometheus_files(
            self.dir / "prometheus" / "prometheus.yml",
            rules_dir=self.rules_dir,
            port=p["prometheus"],
            alertmanager_port=p["alertmanager"],
            operator_port=p["operator-metrics"],
            cluster=self.cluster,
        )
        monitoring.write_alertmanager_file(
            self.dir / "alertmanager" / "alertmanager.yml",
            receiver_port=p["operator-receiver"],
            token_file=self.receiver_token_file,
        )

    # -- cluster contents -----------------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Run the project's kubectl against this environment."""
        return Kubectl(self.tools.binary("kubectl"), self.kubeconfig)(
            *args, input=input, check=check
        )

    def _rbac_bootstrapped(self) -> bool:
        return control_plane.rbac_bootstrapped(
            self.url("kube-apiserver"), self._credentials.ca.cert, self._credentials.client("admin")
        )

    def _wait(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        wait_until(check, what, timeout, say=self._say, logs=self.dir / "logs")
