"""A Change's health as Prometheus answers it: its checks (one batched query) and the critical
alerts of its service, judged by the rules in `domain/changes.py`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from opsledger.adapters.prometheus import Prometheus, PrometheusUnavailableError
from opsledger.domain import changes
from opsledger.domain.changes import Health, Verdict
from opsledger.models.change import ChangeSpec, HealthCheck


async def measure(
    prometheus: Prometheus | None,
    checks: Sequence[HealthCheck],
    service: str | None,
    namespace: str,
) -> Verdict:
    """Judge `checks` (one batched query) and, with `service`, its critical alerts in
    `namespace`."""
    verdict = Verdict()
    if not checks and service is None:
        return verdict
    if prometheus is None:
        verdict.unknown("no Prometheus is configured (OPSLEDGER_PROMETHEUS_URL)")
        return verdict
    try:
        if checks:
            try:
                samples = await asyncio.to_thread(
                    prometheus.instant, changes.batched_checks_query(checks)
                )
                per_check: list[Sequence[Mapping[str, Any]]] = list(
                    changes.split_batched(checks, samples)
                )
            except PrometheusUnavailableError:
                # One bad query fails the batch: ask one by one to tell which.
                per_check = []
                for check in checks:
                    try:
                        per_check.append(await asyncio.to_thread(prometheus.instant, check.query))
                    except PrometheusUnavailableError as exc:
                        verdict.unknown(f"{check.name}: {exc}")
                        per_check.append([])
            for check, answer in zip(checks, per_check, strict=True):
                if verdict.health is Health.UNKNOWN and not answer:
                    continue
                changes.judge_check(check, answer, verdict)
        if service is not None:
            alerts = await asyncio.to_thread(
                prometheus.instant, changes.critical_alerts_query(service, namespace)
            )
            changes.judge_alerts(alerts, verdict)
    except PrometheusUnavailableError as exc:
        verdict.unknown(str(exc))
    return verdict


async def measure_checks(
    prometheus: Prometheus | None, spec: ChangeSpec, namespace: str, *, pre: bool
) -> Verdict:
    """The change's pre- (or post-) checks, and its service's critical alerts in its namespace
    unless the change turns that check off."""
    checks = (spec.checks.pre if pre else spec.checks.post) if spec.checks else []
    alerts = spec.checks.no_critical_alerts if spec.checks else True
    return await measure(prometheus, checks, spec.service if alerts else None, namespace)
