"""Prometheus rules the local environment loads: the operator's own health.

The chart ships the same group as a PrometheusRule. The burn-rate alerts page people through
Alertmanager's other receivers; they carry `opsledger_incident: managed`, so OpsLedger's own
receiver skips them (the operator opened the Incident itself when it evaluated the burn).
"""

from __future__ import annotations

from typing import Any

OPERATOR_GROUP = "opsledger-operator"


def operator_rules(job: str = "opsledger") -> dict[str, Any]:
    """Alerting and recording rules about the operator and the objects it reconciles."""
    return {
        "groups": [
            {
                "name": OPERATOR_GROUP,
                "rules": [
                    {
                        "record": "opsledger:objects_not_ready:count",
                        "expr": "count by (kind) (opsledger_object_ready == 0)",
                    },
                    {
                        "alert": "OpsLedgerOperatorDown",
                        "expr": f'up{{job="{job}"}} == 0',
                        "for": "1m",
                        "labels": {"severity": "critical"},
                        "annotations": {
                            "summary": "The OpsLedger operator is not answering on /metrics.",
                            "description": (
                                "Changes are not started and records are not written while the "
                                "operator is down. Check its pod's logs."
                            ),
                        },
                    },
                    *(
                        {
                            "alert": f"OpsLedgerErrorBudgetBurn{severity.title()}",
                            "expr": f'opsledger_slo_alert{{severity="{severity}"}} == 1',
                            "labels": {
                                "severity": level,
                                "service": "{{ $labels.service }}",
                                "opsledger_incident": "managed",
                            },
                            "annotations": {
                                "summary": (
                                    "{{ $labels.service }}: the error budget of "
                                    "{{ $labels.objective }} burns fast "
                                    f"({severity} of the multi-window burn-rate alerts)."
                                ),
                                "description": (
                                    "kubectl describe servicelevel {{ $labels.servicelevel }} -n "
                                    "{{ $labels.namespace }} shows the burn rates; OpsLedger has "
                                    "opened an Incident for it."
                                ),
                            },
                        }
                        for severity, level in (("page", "critical"), ("ticket", "warning"))
                    ),
                    {
                        "alert": "OpsLedgerObjectNotReady",
                        "expr": "opsledger_object_ready == 0",
                        "for": "5m",
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": (
                                "{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.name }} "
                                "is not Ready."
                            ),
                            "description": (
                                "kubectl describe {{ $labels.kind }} {{ $labels.name }} -n "
                                "{{ $labels.namespace }} shows the reason and how to fix it."
                            ),
                        },
                    },
                    {
                        # kured (--prometheus-url) holds reboots while any alert fires: so do
                        # other Prometheus-gated tools, during a service's freezes.
                        "alert": "OpsLedgerChangeFreeze",
                        "expr": "max by (namespace, service) (opsledger_change_freeze_active) == 1",
                        # a state, not an incident: OpsLedger's receiver opens none for it
                        "labels": {"severity": "info", "opsledger_incident": "none"},
                        "annotations": {
                            "summary": (
                                "{{ $labels.service }} in {{ $labels.namespace }} is frozen: no "
                                "changes, reboots or deployments."
                            ),
                            "description": (
                                "opsledger window answers why and until when (a freeze, a "
                                "blackout or a shared-calendar event)."
                            ),
                        },
                    },
                ],
            }
        ]
    }
