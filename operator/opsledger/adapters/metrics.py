"""The operator's Prometheus metrics, served on /metrics by the reference client library."""

from __future__ import annotations

import contextlib

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    start_http_server,
)

from opsledger import __version__


class Metrics:
    """The operator's metrics, on a registry of their own (no module-level globals)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry()
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                registry.register(collector)  # process_*, python_* as every exporter has
        self.registry = registry
        self.build_info = Info(
            "opsledger_build", "Version of the running operator.", registry=self.registry
        )
        self.build_info.info({"version": __version__})
        self.reconciliations = Counter(
            "opsledger_reconciliations",
            "Reconciliations of OpsLedger objects, by kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "opsledger_object_ready",
            "1 when the object's Ready condition is True, else 0.",
            ["kind", "namespace", "name"],
            registry=self.registry,
        )
        self.admissions = Counter(
            "opsledger_admission_requests",
            "Admission requests answered by the webhook, by endpoint and decision.",
            ["endpoint", "decision"],
            registry=self.registry,
        )

        self.alerts = Counter(
            "opsledger_alerts_received",
            "Alerts received from Alertmanager, by what they asked (open, resolve, invalid) "
            "and what was done (opened, duplicate, resolved, already-resolved, unknown, refused).",
            ["action", "outcome"],
            registry=self.registry,
        )

    def serve(self, address: str, port: int) -> None:
        start_http_server(port, addr=address, registry=self.registry)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        with contextlib.suppress(KeyError):
            self.ready.remove(kind, namespace, name)
