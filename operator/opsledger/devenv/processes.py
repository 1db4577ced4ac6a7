"""Start, track and stop the local environment's background processes, by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StartError(RuntimeError):
    """A component did not come up; the message says which and where its log is."""


@dataclass
class Component:
    """One background process of the environment and how to tell that it is healthy."""

    name: str
    argv: list[str]
    port: int
    health: Callable[[], bool]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    timeout: float = 60.0


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on loopback (the sockets stay open until all are chosen)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the servers themselves bind: connections of a stopped server left in TIME_WAIT do
        # not make its port busy, a live listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def stop_child(proc: subprocess.Popen[Any], grace: float = 20.0) -> None:
    """Stop a child process: SIGTERM, `grace` seconds to exit, then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


class ProcessTable:
    """The PIDs this environment started, kept in a JSON file so `down` stops exactly those."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, dict[str, object]]:
        if not self.path.exists():
            return {}
        data: dict[str, dict[str, object]] = json.loads(self.path.read_text())
        return data

    def _save(self, table: dict[str, dict[str, object]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(table, indent=2, sort_keys=True))
        tmp.replace(self.path)

    def pid(self, name: str) -> int | None:
        entry = self.load().get(name)
        if not entry:
            return None
        pid = int(str(entry["pid"]))
        return pid if _is_ours(pid, str(entry["exe"])) else None

    def start(self, component: Component) -> int:
        component.log.parent.mkdir(parents=True, exist_ok=True)
        with component.log.open("ab") as log:
            log.write(f"\n--- starting {' '.join(component.argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                component.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **component.env},
                cwd=component.cwd,
                start_new_session=True,  # survives `opsledger dev up` returning
            )
        table = self.load()
        table[component.name] = {
            "pid": proc.pid,
            "exe": component.argv[0],
            "port": component.port,
            "log": str(component.log),
        }
        self._save(table)
        return proc.pid

    def wait_healthy(self, component: Component) -> None:
        entry = self.load().get(component.name) or {}
        pid = int(str(entry.get("pid", 0)))
        deadline = time.monotonic() + component.timeout
        while time.monotonic() < deadline:
            # Liveness of the PID we started, not its identity: /proc/<pid>/cmdline can read
            # empty while the process is still inside execve.
            if not pid or not _alive(pid):
                raise StartError(
                    f"{component.name} exited during start-up; its log is {component.log}:\n"
                    + tail(component.log)
                )
            if _safe(component.health):
                return
            time.sleep(0.2)
        raise StartError(
            f"{component.name} did not become healthy within {component.timeout:.0f}s on port "
            f"{component.port}; its log is {component.log}:\n" + tail(component.log)
        )

    def stop(self, name: str, grace: float = 10.0) -> bool:
        """Stop one process we started; True when something was stopped."""
        pid = self.pid(name)
        table = self.load()
        table.pop(name, None)
        if pid is None:
            self._save(table)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self._save(table)
        return True


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except Exception:  # a health probe that errors means "not yet"
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    if state != "Z":
        return True
    # "Z" is also shown while a Go program's main thread has exited but others still run.
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: its parent (or init) reaps it
        try:
            return len(os.listdir(f"/proc/{pid}/task")) > 1
        except FileNotFoundError:
            return False
    return reaped == 0


def _is_ours(pid: int, exe: str) -> bool:
    """The PID is alive and still runs the binary we started (PIDs get reused)."""
    if not _alive(pid):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except FileNotFoundError:
        return False
    return argv0 == exe
