"""The Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler as `Component`s, and the checks `up()` waits on once the API server answers.

Each function takes the binary, ports and files it needs; `credentials.py` writes the
certificates and kubeconfigs they point at.
"""

from __future__ import annotations

from pathlib import Path

from opsledger.devenv.kubeconfig import RunKubectl
from opsledger.devenv.pki import KeyPair
from opsledger.devenv.probes import client_tls, http_get, insecure_tls
from opsledger.devenv.processes import Component

CONTROLLERS = "*,-nodeipam,-attachdetach,-persistentvolume-expander,-ttl"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"


def etcd(binary: Path, *, data_dir: Path, port: int, peer_port: int, log: Path) -> Component:
    """A single-member etcd, the API server's store."""
    return Component(
        "etcd",
        [
            str(binary),
            "--name=opsledger",
            f"--data-dir={data_dir}",
            f"--listen-client-urls=http://127.0.0.1:{port}",
            f"--advertise-client-urls=http://127.0.0.1:{port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=opsledger=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",  # a throw-away local store; durability is not the point
            "--log-level=warn",
        ],
        port,
        lambda: b'"true"' in http_get(f"http://127.0.0.1:{port}/health"),
        log,
    )


def kube_apiserver(
    binary: Path,
    *,
    port: int,
    etcd_port: int,
    serving: KeyPair,
    client_ca: Path,
    service_account: KeyPair,
    admin: KeyPair,
    cert_dir: Path,
    log: Path,
) -> Component:
    """The API server; healthy when /readyz answers `admin` (a client of `client_ca`)."""
    return Component(
        "kube-apiserver",
        [
            str(binary),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={client_ca}",
            f"--service-account-key-file={service_account.cert}",
            f"--service-account-signing-key-file={service_account.key}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            "--authorization-mode=Node,RBAC",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--cert-dir={cert_dir}",
            "--profiling=false",
            "--v=1",
        ],
        port,
        lambda: http_get(f"https://127.0.0.1:{port}/readyz", client_tls(client_ca, admin)) == b"ok",
        log,
    )


def kube_controller_manager(
    binary: Path,
    *,
    port: int,
    kubeconfig: Path,
    ca: KeyPair,
    service_account: KeyPair,
    cert_dir: Path,
    log: Path,
) -> Component:
    """The controllers of `CONTROLLERS`; it signs CSRs with the environment's CA."""
    return _kube_component(
        "kube-controller-manager",
        binary,
        port=port,
        kubeconfig=kubeconfig,
        cert_dir=cert_dir,
        log=log,
        extra=[
            f"--controllers={CONTROLLERS}",
            f"--service-account-private-key-file={service_account.key}",
            f"--root-ca-file={ca.cert}",
            f"--cluster-signing-cert-file={ca.cert}",
            f"--cluster-signing-key-file={ca.key}",
            "--use-service-account-credentials=true",
            "--node-monitor-grace-period=60s",
        ],
    )


def kube_scheduler(
    binary: Path, *, port: int, kubeconfig: Path, cert_dir: Path, log: Path
) -> Component:
    return _kube_component(
        "kube-scheduler",
        binary,
        port=port,
        kubeconfig=kubeconfig,
        cert_dir=cert_dir,
        log=log,
        extra=[],
    )


def _kube_component(
    name: str,
    binary: Path,
    *,
    port: int,
    kubeconfig: Path,
    cert_dir: Path,
    log: Path,
    extra: list[str],
) -> Component:
    """A component that talks to the API server through `kubeconfig` and serves /healthz."""
    return Component(
        name,
        [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={cert_dir}",
            "--leader-elect=false",
            *extra,
        ],
        port,
        lambda: http_get(f"https://127.0.0.1:{port}/healthz", insecure_tls()) == b"ok",
        log,
    )


# -- readiness once the API server answers ---------------------------------------------------


def rbac_bootstrapped(server: str, client_ca: Path, admin: KeyPair) -> bool:
    """The API server has created its bootstrap roles (other components need them)."""
    return b"ok" in http_get(
        f"{server}/readyz/poststarthook/rbac/bootstrap-roles", client_tls(client_ca, admin)
    )


def default_service_account(kubectl: RunKubectl) -> bool:
    """The controller manager has created the `default` service account in `default`."""
    return bool(
        kubectl("get", "serviceaccount", "default", "-n", "default", "-o", "name", check=False)
    )
