"""Health probes for the local environment: HTTP GETs on loopback, TLS contexts, waiting.

Every component's `health` check and every readiness wait of `DevEnvironment.up()` is built
from these.
"""

from __future__ import annotations

import ssl
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsledger.devenv.pki import KeyPair
from opsledger.devenv.processes import StartError


def http_get(url: str, context: ssl.SSLContext | None = None) -> bytes:
    """The body of a GET, stripped of surrounding whitespace (a 2 s timeout)."""
    with urllib.request.urlopen(url, timeout=2, context=context) as response:
        body: bytes = response.read()
        return body.strip()


def insecure_tls() -> ssl.SSLContext:
    """For the health endpoints of components that serve a self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_tls(ca: Path, client: KeyPair) -> ssl.SSLContext:
    """Verify the server against `ca` and present `client` (e.g. the admin's certificate)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx


def quiet(check: Callable[[], Any]) -> bool:
    """The check's truth; a check that raises counts as false (not yet, or not healthy)."""
    try:
        return bool(check())
    except Exception:
        return False


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout: float,
    *,
    say: Callable[[str], None],
    logs: Path,
) -> None:
    """Poll `check` every half second until it holds; StartError (naming `logs`) on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if quiet(check):
            say(f"{what}: ok")
            return
        time.sleep(0.5)
    raise StartError(f"timed out after {timeout:.0f}s waiting for {what}; logs in {logs}")
