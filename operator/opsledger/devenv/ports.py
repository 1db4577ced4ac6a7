"""The loopback ports of one local environment, chosen once and kept in a JSON file."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from opsledger.devenv.processes import free_ports

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


def persistent_ports(path: Path, names: Iterable[str] = PORT_NAMES) -> dict[str, int]:
    """The ports recorded in `path`; free ones are chosen (and recorded) for missing names."""
    ports: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
    missing = [n for n in names if n not in ports]
    if missing:
        ports.update(zip(missing, free_ports(len(missing)), strict=True))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ports, indent=2, sort_keys=True))
    return ports
