"""Change handlers: approval by pull request, windows, health gates, execution and rollback.

One timer per Change drives it through its lifecycle, one step per tick, so a single writer owns
its status and every step is persisted before the next one starts:

    PendingApproval → Approved → Scheduled → InProgress → Verifying → Completed
                   ↘ Rejected   ↘ Cancelled  ↘ (post-checks fail) → RolledBack (+ Incident)

Nothing a step needs lives only in memory: the proposal is in Git, the approval is read back
from Git, the targets' prior state and the applied plan steps are in status, and each applied
step is stamped on its target, so a restart resumes where it stopped and never applies a step
twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from opsledger.domain import changes
from opsledger.domain.conditions import READY
from opsledger.handlers.change_approval import record, seek_approval
from opsledger.handlers.change_assessment import assess
from opsledger.handlers.change_execution import carry_out, try_start, verify
from opsledger.handlers.change_steps import (
    CRITICALITY,
    PLANS,
    SERVICE_LEVELS,
    UNHAPPY,
    Step,
)
from opsledger.handlers.common import context, forget_on_delete, validated_spec
from opsledger.models import CHANGE
from opsledger.models.change import ChangePhase, ChangeSpec
from opsledger.models.common import ConditionStatus
from opsledger.models.settings import Settings
from opsledger.services.context import Context


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Attach the Change handlers to `registry`."""
    resource = ("opsledger.io", "v1alpha1", CHANGE.plural)

    @kopf.index("opsledger.io", "v1alpha1", "servicelevels", registry=registry, id=SERVICE_LEVELS)
    def change_service_levels(
        *, namespace: str | None, spec: kopf.Spec, status: kopf.Status, **_: Any
    ) -> dict[tuple[str, str], dict[str, Any]]:
        if not spec.get("service"):
            return {}
        return {(namespace or "", spec["service"]): {"spec": dict(spec), "status": dict(status)}}

    @kopf.index(*resource, registry=registry, id=PLANS)
    def change_plans(
        *, namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status, **_: Any
    ) -> dict[str, tuple[Any, ...]]:
        window = status.get("window") or {}
        schedule = spec.get("schedule") or {}
        return {
            namespace or "": (
                name,
                tuple(spec.get("targets") or ()),
                window.get("start") or schedule.get("notBefore"),
                window.get("end") or schedule.get("notAfter"),
                status.get("phase"),
                (status.get("execution") or {}).get("finishedAt"),
            )
        }

    @kopf.index("opsledger.io", "v1alpha1", "configurationitems", registry=registry, id=CRITICALITY)
    def change_item_criticality(
        *, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
    ) -> dict[str, str]:
        return {f"{namespace}/{name}": str(spec.get("criticality") or "medium")}

    @kopf.timer(
        *resource,
        registry=registry,
        id="lifecycle",
        interval=settings.change_interval,
        backoff=max(settings.change_interval, 5.0),
    )
    async def lifecycle(
        *,
        body: kopf.Body,
        patch: kopf.Patch,
        memo: kopf.Memo,
        **kwargs: Any,
    ) -> None:
        ctx = context(memo)
        step = Step(body=body, now=ctx.clock())
        spec = validated_spec(info=CHANGE, ctx=ctx, body=body, patch=patch)
        if not isinstance(spec, ChangeSpec):
            return  # InvalidSpec reported
        namespace = str(body.metadata.get("namespace"))
        levels = list(kwargs[SERVICE_LEVELS].get((namespace, spec.service), ()))
        level = levels[0] if levels else None
        if step.phase not in changes.FINAL:
            assess(step, spec, level, kwargs)
        await advance(ctx, step, spec, level)
        if step.status or not step.synced():
            await record(ctx, step, spec)
        ready = step.phase not in UNHAPPY
        last = step.transitions[-1]["reason"] if step.transitions else "accepted"
        step.condition(
            READY,
            ConditionStatus.TRUE if ready else ConditionStatus.FALSE,
            (step.phase or ChangePhase.PENDING_APPROVAL).value,
            last,
        )
        patch.status.update(step.status)
        patch.status["observedGeneration"] = body.metadata.get("generation")
        for type_, reason, message in step.events:
            kopf.event(body, type=type_, reason=reason, message=message)
        ctx.metrics.reconciliations.labels(CHANGE.kind, step.phase or "none").inc()

    forget_on_delete(CHANGE, registry)


async def advance(
    ctx: Context, step: Step, spec: ChangeSpec, level: Mapping[str, Any] | None
) -> None:
    """Take the change as far as it can go in this tick."""
    status = step.body.status
    if step.phase in changes.FINAL:
        return
    wanted = changes.spec_hash(spec)
    approval = dict(status.get("approval") or {})
    if step.phase is None:
        step.enter(ChangePhase.PENDING_APPROVAL, f"{spec.type} change created")
    if spec.cancelled and step.phase not in changes.ACTIVE:
        step.enter(ChangePhase.CANCELLED, "spec.cancelled was set before the change started")
        return
    if (
        approval.get("approvedAt")
        and approval.get("specHash") != wanted
        and step.phase not in changes.ACTIVE
    ):
        step.enter(
            ChangePhase.PENDING_APPROVAL,
            "the spec was edited after approval: the approval is void and the change is proposed "
            "again",
            warning=True,
        )
        approval = {}
        step.status["approval"] = None
        step.status["window"] = None
    if step.phase == ChangePhase.PENDING_APPROVAL:
        await seek_approval(ctx, step, spec, level, wanted=wanted, approval=approval)
    if step.phase == ChangePhase.APPROVED:
        step.enter(ChangePhase.SCHEDULED, "approved: waiting for an eligible window and health")
    if step.phase == ChangePhase.SCHEDULED:
        await try_start(ctx, step, spec, level)
        return  # the plan runs from the next tick, once InProgress and the prior state are stored
    if step.phase == ChangePhase.IN_PROGRESS:
        await carry_out(ctx, step, spec)
    if step.phase == ChangePhase.VERIFYING:
        await verify(ctx, step, spec, level)
