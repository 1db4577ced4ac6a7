"""Flux's kustomize-controller on the local control plane (built by `tools/build.sh flux`), and
a place that publishes what it deploys.

The controller runs as Flux runs it, outside the cluster here: its own Kubernetes identity from
a kubeconfig, all namespaces watched, no leader election. What it deploys comes from an
`ExternalArtifact` (source.toolkit.fluxcd.io/v1), Flux's own interface for artifacts produced
outside source-controller: a tarball served over HTTP, named in the object's status with its
revision and sha256 digest, which the controller verifies before it applies anything.
`ArtifactStore` is that producer: it writes tarballs and serves them on loopback.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opsledger.devenv.paths import ToolMissingError, cache_dir, versions
from opsledger.devenv.processes import free_ports, stop_child, tail


def kustomize_controller_binary() -> Path:
    """The pinned kustomize-controller, or ToolMissingError saying how to build it."""
    version = versions()["FLUX_KUSTOMIZE_CONTROLLER_VERSION"]
    binary = cache_dir() / "bin" / f"flux-{version}" / "kustomize-controller"
    if not binary.exists():
        raise ToolMissingError(f"missing: {binary}. Run `tools/build.sh flux` to build it.")
    return binary


@contextmanager
def kustomize_controller(kubeconfig: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """kustomize-controller against the cluster of `kubeconfig`, until the block ends."""
    metrics, health = free_ports(2)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(kustomize_controller_binary()),
                f"--metrics-addr=127.0.0.1:{metrics}",
                f"--health-addr=127.0.0.1:{health}",
                "--enable-leader-election=false",
                "--watch-all-namespaces=true",
                "--feature-gates=ExternalArtifact=true",
                "--requeue-dependency=2s",
                "--log-level=info",
            ],
            env={
                "RUNTIME_NAMESPACE": "flux-system",
                "KUBECONFIG": str(kubeconfig),
                "PATH": "/usr/bin:/bin",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"kustomize-controller exited: {tail(log)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health}/readyz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"kustomize-controller not ready: {tail(log)}") from None
                time.sleep(0.5)
        yield proc
    finally:
        stop_child(proc)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class ArtifactStore:
    """Tarballs of manifests served over HTTP on loopback, described as Flux artifacts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        handler = partial(_Quiet, directory=str(folder))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def publish(self, name: str, files: Mapping[str, str]) -> dict[str, Any]:
        """A tarball of `files` (path → text); the `status.artifact` that names it."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for path, text in sorted(files.items()):
                data = text.encode()
                info = tarfile.TarInfo(path)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                archive.addfile(info, io.BytesIO(data))
        blob = buffer.getvalue()
        digest = hashlib.sha256(blob).hexdigest()
        path = f"{name}/{digest[:12]}.tar.gz"
        (self.folder / name).mkdir(exist_ok=True)
        (self.folder / path).write_bytes(blob)
        return {
            "path": path,
            "url": f"{self.url}/{path}",
            "revision": f"latest@sha256:{digest}",
            "digest": f"sha256:{digest}",
            "lastUpdateTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "size": len(blob),
        }

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
