"""The local environment's credentials, written once into its `pki/` folder.

The CA, the API server's serving certificate, the service-account signing keys, the operator
webhook's certificate, the bearer token Alertmanager presents to the operator's receiver, and
a client certificate plus kubeconfig for each identity in `CLIENT_IDENTITIES`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from opsledger.devenv.kubeconfig import kubeconfig_text
from opsledger.devenv.pki import CertificateAuthority, KeyPair, service_account_keys

API_SERVER_HOSTS = (
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "10.96.0.1",
)
# name -> (common name, organization): Kubernetes reads them as user and group
CLIENT_IDENTITIES: dict[str, tuple[str, str | None]] = {
    "admin": ("opsledger-admin", "system:masters"),
    # the operator's own identity: its requests pass the admission guard, a person's not
    "operator": ("opsledger-operator", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", None),
    "kube-scheduler": ("system:kube-scheduler", None),
}


@dataclass(frozen=True)
class CredentialFiles:
    """Where each credential lives in the environment's `pki/` folder."""

    folder: Path

    @property
    def ca(self) -> KeyPair:
        return KeyPair(self.folder / "ca.crt", self.folder / "ca.key")

    @property
    def api_server(self) -> KeyPair:
        return KeyPair(self.folder / "kube-apiserver.crt", self.folder / "kube-apiserver.key")

    @property
    def service_account(self) -> KeyPair:
        """The token signing keys (the public key as `cert`), as `service_account_keys` writes."""
        return KeyPair(self.folder / "sa.pub", self.folder / "sa.key")

    @property
    def webhook(self) -> KeyPair:
        return KeyPair(self.folder / "operator-webhook.crt", self.folder / "operator-webhook.key")

    @property
    def receiver_token(self) -> Path:
        """The bearer token Alertmanager sends to the operator's receiver."""
        return self.folder / "receiver.token"

    def client(self, identity: str) -> KeyPair:
        """The client certificate of one of `CLIENT_IDENTITIES`."""
        return KeyPair(
            self.folder / f"{identity}-client.crt", self.folder / f"{identity}-client.key"
        )


def write_receiver_token(path: Path) -> None:
    """A random bearer token, owner-readable only; an existing one is kept."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)


def write_credentials(
    files: CredentialFiles, *, kubeconfigs: Mapping[str, Path], cluster: str, server: str
) -> None:
    """Issue whatever is missing; `kubeconfigs` maps identity names to their kubeconfig files."""
    ca = CertificateAuthority(files.folder).ensure()
    ca.issue("kube-apiserver", common_name="kube-apiserver", hosts=API_SERVER_HOSTS, server=True)
    service_account_keys(files.folder)
    write_receiver_token(files.receiver_token)
    ca.issue("operator-webhook", common_name="opsledger-webhook", hosts=("127.0.0.1",), server=True)
    for name, (cn, org) in CLIENT_IDENTITIES.items():
        pair = ca.issue(f"{name}-client", common_name=cn, organization=org, client=True)
        path = kubeconfigs[name]
        if not path.exists():
            path.write_text(
                kubeconfig_text(
                    cluster=cluster, server=server, ca=files.ca.cert, client=pair, user=name
                )
            )
            path.chmod(0o600)
