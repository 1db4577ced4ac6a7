"""Prometheus and Alertmanager for the local environment: their configs and `Component`s.

Prometheus scrapes itself and the operator's /metrics, loads every rule file in its rules
folder (the operator's own group among them) and alerts to Alertmanager; Alertmanager routes
every alert to the operator's receiver with a bearer token read from a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from opsledger.devenv.probes import http_get
from opsledger.devenv.processes import Component
from opsledger.devenv.rules import operator_rules

OPERATOR_JOB = "opsledger"
OPERATOR_RULES_FILE = "opsledger-operator.yml"


def prometheus(binary: Path, *, config: Path, data: Path, port: int, log: Path) -> Component:
    return Component(
        "prometheus",
        [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            "--storage.tsdb.retention.time=400d",
            "--log.level=warn",
        ],
        port,
        lambda: http_get(f"http://127.0.0.1:{port}/-/ready").startswith(b"Prometheus"),
        log,
    )


def alertmanager(binary: Path, *, config: Path, data: Path, port: int, log: Path) -> Component:
    return Component(
        "alertmanager",
        [
            str(binary),
            f"--config.file={config}",
            f"--storage.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        port,
        lambda: http_get(f"http://127.0.0.1:{port}/-/ready").startswith(b"OK"),
        log,
    )


def prometheus_config(
    *, rules_dir: Path, port: int, alertmanager_port: int, operator_port: int, cluster: str
) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": [str(rules_dir / "*.yml")],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            },
            {
                "job_name": OPERATOR_JOB,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{operator_port}"], "labels": {"cluster": cluster}}
                ],
            },
        ],
    }


def alertmanager_config(*, receiver_url: str, token_file: Path) -> dict[str, Any]:
    return {
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
                        "url": receiver_url,
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": str(token_file),
                            }
                        },
                    }
                ],
            }
        ],
    }


def write_prometheus_files(
    config: Path,
    *,
    rules_dir: Path,
    port: int,
    alertmanager_port: int,
    operator_port: int,
    cluster: str,
) -> None:
    """prometheus.yml and the operator's rule file in `rules_dir`."""
    rules_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(
        config,
        prometheus_config(
            rules_dir=rules_dir,
            port=port,
            alertmanager_port=alertmanager_port,
            operator_port=operator_port,
            cluster=cluster,
        ),
    )
    write_yaml(rules_dir / OPERATOR_RULES_FILE, operator_rules(OPERATOR_JOB))


def write_alertmanager_file(config: Path, *, receiver_port: int, token_file: Path) -> None:
    """alertmanager.yml, routing to the operator's receiver on `receiver_port`."""
    receiver_url = f"http://127.0.0.1:{receiver_port}/alertmanager"
    write_yaml(config, alertmanager_config(receiver_url=receiver_url, token_file=token_file))


def write_yaml(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
