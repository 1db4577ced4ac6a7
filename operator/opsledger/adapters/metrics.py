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
        self._frozen: set[tuple[str, str]] = set()
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
        self.leader = Gauge(
            "opsledger_leader",
            "1 while this replica leads (runs the loops and carries out changes), 0 standing by.",
            registry=self.registry,
        )
        self.freeze_active = Gauge(
            "opsledger_change_freeze_active",
            "1 while a freeze, blackout or shared-calendar event of the service holds changes "
            "(alert OpsLedgerChangeFreeze: kured and other Prometheus-gated tools hold off).",
            ["namespace", "service"],
            registry=self.registry,
        )
        self.health_evaluated = Gauge(
            "opsledger_health_last_evaluation_timestamp_seconds",
            "When the health loop last measured every item (an item's status is written only "
            "when its figures change).",
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

        self._kpis()
        self._slos()
        self._slo_series: set[tuple[str, str, str, str]] = set()
        self._slo_windows: set[str] = set()

    def _kpis(self) -> None:
        """Service-management KPIs and DORA, recomputed from the objects (see domain.kpi)."""
        r = self.registry
        self.incidents_open = Gauge(
            "opsledger_incidents_open",
            "Incidents not yet resolved, by priority.",
            ["priority"],
            registry=r,
        )
        self.incidents_opened = Gauge(
            "opsledger_incidents_opened",
            "Incidents opened in the KPI window, by priority.",
            ["priority"],
            registry=r,
        )
        self.time_to_acknowledge = Gauge(
            "opsledger_incident_mean_time_to_acknowledge_seconds",
            "Mean time from opening to acknowledgement of incidents opened in the KPI window.",
            ["priority"],
            registry=r,
        )
        self.time_to_resolve = Gauge(
            "opsledger_incident_mean_time_to_resolve_seconds",
            "Mean time from opening to resolution of incidents opened in the KPI window.",
            ["priority"],
            registry=r,
        )
        self.sla_breaches = Gauge(
            "opsledger_incident_sla_breaches",
            "Incidents opened in the KPI window that missed a target (response or resolution).",
            ["priority", "target"],
            registry=r,
        )
        self.change_outcomes = Gauge(
            "opsledger_changes_finished",
            "Changes that reached a final phase in the KPI window, by type and outcome.",
            ["type", "outcome"],
            registry=r,
        )
        self.deployment_frequency = Gauge(
            "opsledger_dora_deployment_frequency_per_day",
            "DORA: changes completed per day over the KPI window.",
            registry=r,
        )
        self.lead_time = Gauge(
            "opsledger_dora_lead_time_seconds",
            "DORA: median time from a Change's creation to its completion (NaN: none completed).",
            registry=r,
        )
        self.change_failure_rate = Gauge(
            "opsledger_dora_change_failure_ratio",
            "DORA: failed or rolled-back changes over all changes carried out (NaN: none).",
            registry=r,
        )
        self.time_to_restore = Gauge(
            "opsledger_dora_time_to_restore_seconds",
            "DORA: median time to resolve incidents caused by changes (NaN: none resolved).",
            registry=r,
        )
        self.kpi_window = Gauge(
            "opsledger_kpi_window_seconds", "The look-back window of the KPIs.", registry=r
        )

    def _slos(self) -> None:
        """Each objective's latest evaluation, for dashboards and generic burn-rate alerts."""
        labels = ["namespace", "servicelevel", "service", "objective"]
        r = self.registry
        self.slo_target = Gauge(
            "opsledger_slo_objective_percent",
            "The objective's target, in percent.",
            labels,
            registry=r,
        )
        self.slo_sli = Gauge(
            "opsledger_slo_sli_percent",
            "Good events over the objective's window, in percent.",
            labels,
            registry=r,
        )
        self.slo_budget = Gauge(
            "opsledger_slo_error_budget_remaining",
            "Share of the error budget left: 1 untouched, 0 spent, negative overspent.",
            labels,
            registry=r,
        )
        self.slo_alert = Gauge(
            "opsledger_slo_alert",
            "1 while the objective's multi-window burn-rate alert of this severity fires.",
            [*labels, "severity"],
            registry=r,
        )
        self.slo_burn = Gauge(
            "opsledger_slo_burn_rate",
            "How fast the error budget burns over a window (1 spends it exactly in the window).",
            [*labels, "window"],
            registry=r,
        )

    def publish_slos(
        self,
        rows: list[
            tuple[
                tuple[str, str, str, str],
                float,
                float | None,
                float | None,
                dict[str, float | None],
                list[str],
            ]
        ],
    ) -> None:
        """Set each objective's gauges; drop those of objectives no longer there.

        A row: ((namespace, servicelevel, service, objective), target, SLI, budget, burn rates,
        alerts firing).
        """
        nan = float("nan")
        current = set()
        for labels, target, sli, budget, burn, alerts in rows:
            current.add(labels)
            self.slo_target.labels(*labels).set(target)
            self.slo_sli.labels(*labels).set(nan if sli is None else sli)
            self.slo_budget.labels(*labels).set(nan if budget is None else budget)
            for window, rate in burn.items():
                self.slo_burn.labels(*labels, window).set(nan if rate is None else rate)
            for severity in ("page", "ticket"):
                self.slo_alert.labels(*labels, severity).set(int(severity in alerts))
        for labels in self._slo_series - current:
            for gauge in (self.slo_target, self.slo_sli, self.slo_budget):
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
            for window in self._slo_windows:
                with contextlib.suppress(KeyError):
                    self.slo_burn.remove(*labels, window)
            for severity in ("page", "ticket"):
                with contextlib.suppress(KeyError):
                    self.slo_alert.remove(*labels, severity)
        self._slo_series = current
        self._slo_windows |= {w for *_, burn in rows for w in burn}

    def serve(self, address: str, port: int) -> None:
        start_http_server(port, addr=address, registry=self.registry)

    def set_freezes(self, active: dict[tuple[str, str], bool]) -> None:
        """Whether each (namespace, service) is held now; services no longer there are dropped."""
        for labels in list(self._frozen - set(active)):
            with contextlib.suppress(KeyError):
                self.freeze_active.remove(*labels)
        for (namespace, service), held in active.items():
            self.freeze_active.labels(namespace, service).set(1 if held else 0)
        self._frozen = set(active)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        with contextlib.suppress(KeyError):
            self.ready.remove(kind, namespace, name)
