"""What carrying out a Change asks of the API server: the target items' health, the plan
targets' prior state, the plan's steps (each stamped on its target, so a restart never applies
one twice), and the exact rollback with the Incident it opens.

The rules (when each of these happens, and what their answers mean) are in
`domain/change_lifecycle.py`; these functions only ask and tell, and return what they found.
Blocking calls: run them in a thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsledger.domain import changes
from opsledger.domain.change_facts import PlanResult, RollbackResult
from opsledger.domain.times import rfc3339
from opsledger.domain.windows import Decision
from opsledger.models import CONFIGURATION_ITEM
from opsledger.models.change import ChangeSpec
from opsledger.models.incident import OriginType
from opsledger.services.context import Context
from opsledger.services.incident_factory import open_incident


def target_statuses(
    ctx: Context, spec: ChangeSpec, namespace: str
) -> dict[str, Mapping[str, Any] | None]:
    """Each target item's status (None when it does not exist), for its measured health."""
    if ctx.kube is None:
        return {}
    items = {t: ctx.kube.get_custom(CONFIGURATION_ITEM.plural, t, namespace) for t in spec.targets}
    return {t: (ci or {}).get("status") for t, ci in items.items()}


def capture(ctx: Context, spec: ChangeSpec, namespace: str) -> list[dict[str, Any]]:
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


def apply_plan(
    ctx: Context,
    spec: ChangeSpec,
    namespace: str,
    uid: str,
    execution: Mapping[str, Any],
    *,
    window: Decision | None = None,
) -> PlanResult:
    """Apply the plan's remaining steps; a step already stamped on its target is not repeated.
    Any refusal of the API server ends it, reported in the result. No step starts once the
    change's window (`window`, decided now; None for an emergency change) has closed: the
    remaining ones wait for the next."""
    assert ctx.kube is not None
    done = int(execution.get("appliedSteps") or 0)
    until = None
    if window is not None:
        until = window.next.end if window.allowed and window.next else ctx.clock()
    try:
        for index in range(done, len(spec.plan)):
            if until is not None and window is not None and ctx.clock() >= until:
                reason = window.reason if not window.allowed else f"it closed at {rfc3339(until)}"
                return PlanResult(
                    index,
                    waiting=f"{index} of {len(spec.plan)} plan steps applied; the next starts "
                    f"only inside a window: {reason}",
                )
            plan_step = spec.plan[index]
            ref = plan_step.target
            stamp = f"{uid}/{index}"
            current = ctx.kube.get(ref.api_version, ref.kind, ref.name, namespace)
            annotations = ((current or {}).get("metadata") or {}).get("annotations") or {}
            if annotations.get(changes.STEP_ANNOTATION) == stamp:
                continue  # applied before a restart, not yet counted
            ctx.kube.patch(
                ref.api_version,
                ref.kind,
                ref.name,
                namespace,
                patch_type=plan_step.patch_type,
                body=changes.stamped(plan_step.patch_type, plan_step.patch, stamp, current),
            )
    except Exception as exc:  # any API refusal fails the change, reported (it may echo values)
        return PlanResult(done, ctx.redactor.text(str(exc)))
    return PlanResult(len(spec.plan))


def roll_back(
    ctx: Context,
    spec: ChangeSpec,
    *,
    namespace: str,
    name: str,
    execution: Mapping[str, Any],
    why: str,
) -> RollbackResult:
    """Restore every target's prior state exactly (the last captured first), then open an
    Incident about it."""
    assert ctx.kube is not None
    problems = []
    for prior in reversed(execution.get("prior") or []):
        ref = prior["target"]
        try:
            if prior.get("existed"):
                ctx.kube.restore(
                    ref["apiVersion"],
                    ref["kind"],
                    ref["name"],
                    namespace,
                    prior.get("object") or {},
                )
            else:
                ctx.kube.delete(ref["apiVersion"], ref["kind"], ref["name"], namespace)
        except Exception as exc:  # reported; the rest is still restored
            problems.append(f"{ref['kind']} {ref['name']}: {ctx.redactor.text(str(exc))}")
    incident = f"{name}-rollback"[:253]
    open_incident(
        ctx.kube,
        namespace,
        incident,
        origin=OriginType.CHANGE,
        reference=name,
        labels={"opsledger.io/change": name},
        spec={
            "title": f"Change {name} was rolled back: {spec.summary}"[:200],
            "description": why[:16384],
            "service": spec.service,
            "configurationItems": list(spec.targets),
            "impact": "medium",
            "urgency": "high",
        },
    )
    return RollbackResult(why, tuple(problems), incident)
