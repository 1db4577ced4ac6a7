"""How clients reach the local API server: kubeconfig files and the project's kubectl."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Protocol

import yaml

from opsledger.devenv.pki import KeyPair
from opsledger.devenv.processes import StartError


def kubeconfig_text(*, cluster: str, server: str, ca: Path, client: KeyPair, user: str) -> str:
    """A kubeconfig with one cluster, one user (`client`'s certificate inline) and a context."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": b64(ca.read_bytes()),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client.cert_pem()),
                    "client-key-data": b64(client.key_pem()),
                },
            }
        ],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }
    return yaml.safe_dump(doc, sort_keys=False)


class RunKubectl(Protocol):
    """What the readiness checks call: kubectl's arguments in, its stdout out."""

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> str: ...


class Kubectl:
    """The project's kubectl binary, run against one kubeconfig."""

    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """kubectl's stdout; StartError with its stderr when it fails and `check` is set."""
        result = subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise StartError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout
