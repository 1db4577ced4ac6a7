"""Starting, carrying out and verifying a change: windows, health gates, the plan with its
prior state and per-step stamps, and the exact rollback with its Incident."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from opsledger.adapters.prometheus import Prometheus, PrometheusUnavailableError
from opsledger.domain import changes
from opsledger.domain.changes import Health, Verdict
from opsledger.domain.durations import go_duration
from opsledger.domain.windows import rfc3339
from opsledger.handlers.change_steps import (
    HEALTH_GATE,
    STEP_ANNOTATION,
    WINDOW_OPEN,
    Step,
)
from opsledger.models.change import ChangePhase, ChangeSpec, ChangeType, HealthCheck
from opsledger.models.common import ConditionStatus
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.services.context import Context

# -- starting ----------------------------------------------------------------------------


async def try_start(
    ctx: Context, step: Step, spec: ChangeSpec, level: Mapping[str, Any] | None
) -> None:
    if level is None:
        step.condition(
            WINDOW_OPEN,
            ConditionStatus.FALSE,
            "ServiceLevelNotFound",
            f"no ServiceLevel with spec.service={spec.service!r} in this namespace: its windows, "
            "freezes and budget decide when the change may run; create it or fix spec.service",
        )
        return
    sl = ServiceLevelSpec.model_validate(level.get("spec") or {})
    schedule = spec.schedule
    decision = changes.change_window(step.now, spec, sl)
    step.status["window"] = (
        {"start": rfc3339(decision.next.start), "end": rfc3339(decision.next.end)}
        if decision.next
        else None
    )
    if not decision.allowed:
        step.condition(WINDOW_OPEN, ConditionStatus.FALSE, "OutsideWindow", decision.reason)
        if decision.next is None and schedule and schedule.not_after:
            step.enter(ChangePhase.FAILED, decision.reason, warning=True)
        return
    step.condition(WINDOW_OPEN, ConditionStatus.TRUE, "InsideWindow", decision.reason)
    if step.blocked_by and spec.type != ChangeType.EMERGENCY:
        return  # the Conflict condition names the change in progress on these items
    pre = spec.checks.pre if spec.checks else []
    alerts = spec.checks.no_critical_alerts if spec.checks else True
    verdict = await gate(ctx.prometheus, pre, spec.service if alerts else None)
    if spec.type == ChangeType.NORMAL:
        changes.judge_budget(level.get("status") or {}, sl, verdict)
    if spec.type != ChangeType.EMERGENCY:  # an emergency change may be the fix of a Down item
        namespace = str(step.body.metadata.get("namespace"))
        changes.judge_targets(await asyncio.to_thread(_targets, ctx, spec, namespace), verdict)
    if not report_health(step, verdict, "pre-checks"):
        return
    prior = await asyncio.to_thread(_capture, ctx, spec, str(step.body.metadata.get("namespace")))
    step.now = ctx.clock()  # it starts now, once the gates passed (they take a moment)
    step.status["execution"] = {"startedAt": rfc3339(step.now), "appliedSteps": 0, "prior": prior}
    if spec.type == ChangeType.EMERGENCY:
        started = "started now: an emergency change skips the windows"
    else:
        ends = rfc3339(decision.next.end) if decision.next else "?"
        started = f"started in the window ending {ends}"
    step.enter(ChangePhase.IN_PROGRESS, started)


async def gate(
    prometheus: Prometheus | None, checks: Sequence[HealthCheck], service: str | None
) -> Verdict:
    """Judge `checks` (one batched query) and, with `service`, its critical alerts."""
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
                prometheus.instant, changes.critical_alerts_query(service)
            )
            changes.judge_alerts(alerts, verdict)
    except PrometheusUnavailableError as exc:
        verdict.unknown(str(exc))
    return verdict


def _targets(ctx: Context, spec: ChangeSpec, namespace: str) -> dict[str, Any]:
    """Each target item's status (None when it does not exist), for its measured health."""
    if ctx.kube is None:
        return {}
    items = {t: ctx.kube.get_custom("configurationitems", t, namespace) for t in spec.targets}
    return {t: (ci or {}).get("status") for t, ci in items.items()}


def report_health(step: Step, verdict: Verdict, what: str) -> bool:
    if verdict.health is Health.HEALTHY:
        step.condition(HEALTH_GATE, ConditionStatus.TRUE, "Healthy", f"{what}: {verdict.message}")
        return True
    if verdict.health is Health.UNKNOWN:
        step.condition(
            HEALTH_GATE,
            ConditionStatus.UNKNOWN,
            "HealthUnknown",
            f"{what}: health is unknown, so the change waits: {verdict.message}",
        )
    else:
        step.condition(
            HEALTH_GATE, ConditionStatus.FALSE, "Unhealthy", f"{what} fail: {verdict.message}"
        )
    return False


def _capture(ctx: Context, spec: ChangeSpec, namespace: str) -> list[dict[str, Any]]:
    """Each plan target's labels, annotations and spec as they are now (once per target)."""
    assert ctx.kube is not None
    prior = []
    seen = set()
    for plan_step in spec.plan:
        ref = plan_step.target
        key = (ref.api_version, ref.kind, ref.name)
        if key in seen:
            continue
        seen.add(key)
        obj = ctx.kube.get(ref.api_version, ref.kind, ref.name, namespace)
        target = ref.model_dump(mode="json", by_alias=True, exclude_none=True)
        if obj is None:
            prior.append({"target": target, "existed": False})
            continue
        meta = obj.get("metadata") or {}
        prior.append(
            {
                "target": target,
                "existed": True,
                "object": {
                    "metadata": {
                        "labels": meta.get("labels") or {},
                        "annotations": meta.get("annotations") or {},
                    },
                    "spec": obj.get("spec"),
                },
            }
        )
    return prior


# -- carrying out ------------------------------------------------------------------------


async def carry_out(ctx: Context, step: Step, spec: ChangeSpec) -> None:
    execution = dict(step.merged_status().get("execution") or {})
    soak = go_duration(spec.soak) if spec.soak else timedelta(0)
    if spec.plan:
        try:
            applied = await asyncio.to_thread(_apply_plan, ctx, step, spec, execution)
        except Exception as exc:  # any API refusal fails the change, reported
            execution["appliedSteps"] = int(execution.get("appliedSteps") or 0)
            step.status["execution"] = execution
            await _roll_back(
                ctx, step, spec, f"applying the plan failed: {exc}", ChangePhase.FAILED
            )
            return
        execution["appliedSteps"] = applied
        step.status["execution"] = execution
    else:
        window_end = (step.merged_status().get("window") or {}).get("end")
        ended = window_end and datetime.fromisoformat(window_end) <= step.now
        if not spec.done and not ended:
            return  # a permit: people work on the targets until done or the window ends
    execution["verifyAfter"] = rfc3339(step.now + soak)
    step.status["execution"] = execution
    what = "plan applied" if spec.plan else "permit finished"
    when = f"after a soak of {spec.soak}" if spec.soak else "now (no soak)"
    step.enter(ChangePhase.VERIFYING, f"{what}; post-checks {when}")


def _apply_plan(ctx: Context, step: Step, spec: ChangeSpec, execution: dict[str, Any]) -> int:
    """Apply the plan's remaining steps; a step already stamped on its target is not repeated."""
    assert ctx.kube is not None
    namespace = str(step.body.metadata.get("namespace"))
    uid = str(step.body.metadata.get("uid"))
    done = int(execution.get("appliedSteps") or 0)
    for index in range(done, len(spec.plan)):
        plan_step = spec.plan[index]
        ref = plan_step.target
        stamp = f"{uid}/{index}"
        current = ctx.kube.get(ref.api_version, ref.kind, ref.name, namespace)
        annotations = ((current or {}).get("metadata") or {}).get("annotations") or {}
        if annotations.get(STEP_ANNOTATION) == stamp:
            continue  # applied before a restart, not yet counted
        ctx.kube.patch(
            ref.api_version,
            ref.kind,
            ref.name,
            namespace,
            patch_type=plan_step.patch_type,
            body=_stamped(plan_step.patch_type, plan_step.patch, stamp, current),
        )
    return len(spec.plan)


def _stamped(patch_type: str, patch: Any, stamp: str, current: Mapping[str, Any] | None) -> Any:
    """The patch plus the step's stamp, in the same request (so both happen or neither)."""
    if patch_type == "json":
        ops = list(patch or [])
        meta = (current or {}).get("metadata") or {}
        if current is not None:
            ops.insert(
                0,
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": meta["resourceVersion"],
                },
            )
        key = STEP_ANNOTATION.replace("~", "~0").replace("/", "~1")
        if meta.get("annotations"):
            ops.append({"op": "add", "path": f"/metadata/annotations/{key}", "value": stamp})
        else:
            ops.append(
                {"op": "add", "path": "/metadata/annotations", "value": {STEP_ANNOTATION: stamp}}
            )
        return ops
    document = dict(patch or {})
    metadata = dict(document.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), STEP_ANNOTATION: stamp}
    document["metadata"] = metadata
    return document


async def verify(
    ctx: Context, step: Step, spec: ChangeSpec, level: Mapping[str, Any] | None
) -> None:
    execution = dict(step.merged_status().get("execution") or {})
    verify_after = execution.get("verifyAfter")
    if verify_after and step.now < datetime.fromisoformat(verify_after):
        return
    post = spec.checks.post if spec.checks else []
    alerts = spec.checks.no_critical_alerts if spec.checks else True
    verdict = await gate(ctx.prometheus, post, spec.service if alerts else None)
    if verdict.health is Health.UNKNOWN:
        report_health(step, verdict, "post-checks")
        return
    if verdict.health is Health.UNHEALTHY:
        report_health(step, verdict, "post-checks")
        await _roll_back(ctx, step, spec, f"post-checks failed: {verdict.message}")
        return
    report_health(step, verdict, "post-checks")
    execution["finishedAt"] = rfc3339(step.now)
    step.status["execution"] = execution
    step.enter(ChangePhase.COMPLETED, "post-checks pass")


async def _roll_back(
    ctx: Context,
    step: Step,
    spec: ChangeSpec,
    why: str,
    outcome: ChangePhase = ChangePhase.ROLLED_BACK,
) -> None:
    """Restore every target's prior state exactly, then open an Incident about it."""
    assert ctx.kube is not None
    kube = ctx.kube
    namespace = str(step.body.metadata.get("namespace"))
    execution = dict(step.merged_status().get("execution") or {})
    problems = []
    for prior in reversed(execution.get("prior") or []):
        ref = prior["target"]
        try:
            if prior.get("existed"):
                await asyncio.to_thread(
                    kube.restore,
                    ref["apiVersion"],
                    ref["kind"],
                    ref["name"],
                    namespace,
                    prior.get("object") or {},
                )
            else:
                await asyncio.to_thread(
                    kube.delete, ref["apiVersion"], ref["kind"], ref["name"], namespace
                )
        except Exception as exc:  # reported; the rest is still restored
            problems.append(f"{ref['kind']} {ref['name']}: {exc}")
    execution["finishedAt"] = rfc3339(step.now)
    step.status["execution"] = execution
    incident = await asyncio.to_thread(_open_incident, ctx, step, spec, why)
    step.status["incident"] = incident
    restored = "prior state restored" if not problems else "restore failed: " + "; ".join(problems)
    phase = outcome if not problems else ChangePhase.FAILED
    step.enter(phase, f"{why}; {restored}; incident {incident} opened", warning=True)


def _open_incident(ctx: Context, step: Step, spec: ChangeSpec, why: str) -> str:
    assert ctx.kube is not None
    meta = step.body.metadata
    name = f"{meta.get('name')}-rollback"[:253]
    ctx.kube.create_custom(
        "incidents",
        str(meta.get("namespace")),
        {
            "apiVersion": "opsledger.io/v1alpha1",
            "kind": "Incident",
            "metadata": {
                "name": name,
                "labels": {"opsledger.io/change": str(meta.get("name"))},
            },
            "spec": {
                "title": f"Change {meta.get('name')} was rolled back: {spec.summary}"[:200],
                "description": why[:16384],
                "service": spec.service,
                "configurationItems": list(spec.targets),
                "impact": "medium",
                "urgency": "high",
                "origin": {"type": "change", "reference": str(meta.get("name"))},
            },
        },
    )
    return name
