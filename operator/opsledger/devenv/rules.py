"""Prometheus rules the local environment loads: the operator's own health.

The chart will ship the same group as a PrometheusRule; the ServiceLevel reconciler will write
burn-rate rules beside it.
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
                ],
            }
        ]
    }
