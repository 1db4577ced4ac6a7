"""Admission use cases: the facts a request is judged on, read from the API server, and the
decision `domain.admission` makes from them.

- `guard`: a request to change a protected workload (Deployments, StatefulSets, DaemonSets and
  their `scale` subresource). The facts are read at the moment of the request: the items that
  follow the object, the changes in progress, the service's windows.
- `validate`: OpsLedger's own kinds, beyond what the CRD schema can say: the spec through its
  model (a cron expression, a time zone), and a Change's targets must exist.

Each returns (allowed, message); a failure reading the facts raises, and the webhook denies with
the reason. Also here: who the operator is, and the ValidatingWebhookConfiguration written and
removed in the local environment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from opsledger.domain import admission
from opsledger.domain.admission import ActiveChange, Facts, Guardian, Review
from opsledger.domain.observe import api_group
from opsledger.domain.validation import describe
from opsledger.domain.windows import decide
from opsledger.models.change import ChangePhase, ChangeSpec
from opsledger.models.configitem import ConfigurationItemSpec
from opsledger.models.incident import IncidentSpec
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.services.context import Context

WORKLOADS = {"deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet"}
SPEC_MODELS: dict[str, type[BaseModel]] = {
    "changes": ChangeSpec,
    "servicelevels": ServiceLevelSpec,
    "incidents": IncidentSpec,
    "configurationitems": ConfigurationItemSpec,
}


async def operator_identity(ctx: Context) -> str:
    """The operator's user name: from the settings, or asked of the API server."""
    assert ctx.kube is not None
    if ctx.settings.operator_username:
        return ctx.settings.operator_username
    return await asyncio.to_thread(ctx.kube.whoami)


async def put_configuration(ctx: Context, body: dict[str, Any]) -> None:
    """Create or replace the ValidatingWebhookConfiguration `body`."""
    assert ctx.kube is not None
    await asyncio.to_thread(ctx.kube.put_validating_webhook, body)


async def remove_configuration(ctx: Context, name: str) -> None:
    """Delete the ValidatingWebhookConfiguration `name` (when there is a client to do it)."""
    if ctx.kube is not None:
        await asyncio.to_thread(ctx.kube.delete_validating_webhook, name)


async def guard(ctx: Context, operator: str | None, request: Mapping[str, Any]) -> tuple[bool, str]:
    """May this request change the workload it names, now?"""
    resource = request.get("resource") or {}
    plural = str(resource.get("resource", ""))
    kind = WORKLOADS.get(plural)
    if kind is None:
        return True, f"{plural} is not guarded"
    api_version = f"{resource.get('group')}/{resource.get('version')}"
    review = Review(
        operation=str(request.get("operation", "")),
        username=str((request.get("userInfo") or {}).get("username", "")),
        namespace=str(request.get("namespace") or ""),
        kind=kind,
        name=str(request.get("name") or ""),
        subresource=request.get("subResource") or None,
        old=request.get("oldObject"),
        new=request.get("object"),
    )
    if admission.exempt(review, operator) is not None:
        return True, ""
    facts, parent, levels = await asyncio.to_thread(_facts, ctx, operator, review, api_version)
    if parent is not None:
        review = Review(**{**review.__dict__, "parent": parent})
    verdict = admission.judge(review, facts)
    if verdict.allowed:
        return True, verdict.message
    guardian = verdict.guardian
    window, reason = None, None
    level = levels.get(guardian.service) if guardian and guardian.service else None
    if level is not None:
        try:
            sl = ServiceLevelSpec.model_validate(level)
        except ValidationError:
            sl = None
        if sl is not None:
            decision = decide(ctx.clock(), windows=sl.maintenance_windows, freezes=sl.freezes)
            window, reason = decision.next, decision.reason
    return False, admission.denial(review, guardian, window=window, window_reason=reason)


def _facts(
    ctx: Context, operator: str | None, review: Review, api_version: str
) -> tuple[Facts, dict[str, Any] | None, dict[str, Any]]:
    """Items following the object, changes in progress, the namespace's service levels."""
    kube = ctx.kube
    assert kube is not None
    parent = None
    if review.subresource is not None:
        parent = kube.get(api_version, review.kind, review.name, review.namespace)
    guardians = []
    for item in kube.list_namespaced_custom("configurationitems", review.namespace):
        spec = item.get("spec") or {}
        source = spec.get("source") or {}
        if (
            source.get("kind") == review.kind
            and source.get("name") == review.name
            and api_group(str(source.get("apiVersion", ""))) == api_group(api_version)
        ):
            guardians.append(
                Guardian(
                    name=str(item["metadata"]["name"]),
                    protected=bool(spec.get("protected")),
                    service=spec.get("service"),
                    criticality=spec.get("criticality"),
                )
            )
    changes = [
        ActiveChange(str(c["metadata"]["name"]), tuple((c.get("spec") or {}).get("targets") or ()))
        for c in kube.list_namespaced_custom("changes", review.namespace)
        if (c.get("status") or {}).get("phase") == ChangePhase.IN_PROGRESS
    ]
    levels = {}
    if any(g.service for g in guardians):
        for level in kube.list_namespaced_custom("servicelevels", review.namespace):
            spec = level.get("spec") or {}
            if spec.get("service"):
                levels[str(spec["service"])] = spec
    facts = Facts(operator=operator, guardians=guardians, changes=changes)
    return facts, parent, levels


async def validate(
    ctx: Context, operator: str | None, request: Mapping[str, Any]
) -> tuple[bool, str]:
    """Is this OpsLedger object's spec valid, and do a Change's targets exist?"""
    plural = str((request.get("resource") or {}).get("resource", ""))
    model = SPEC_MODELS.get(plural)
    new = request.get("object") or {}
    old = request.get("oldObject") or {}
    username = str((request.get("userInfo") or {}).get("username", ""))
    if model is None or username == operator:
        return True, ""
    if request.get("operation") == "UPDATE" and old.get("spec") == new.get("spec"):
        return True, "the spec is unchanged"  # metadata only: finalizers, annotations
    what = f"{new.get('kind', plural)} {request.get('namespace')}/{request.get('name')}"
    try:
        spec = model.model_validate(dict(new.get("spec") or {}))
    except ValidationError as exc:
        return (
            False,
            f"{what} is invalid: {describe(exc)}. Fix the manifest and apply it again.",
        )
    if isinstance(spec, ChangeSpec) and spec.targets:
        old_targets = set((old.get("spec") or {}).get("targets") or ())
        if set(spec.targets) != old_targets:
            missing = await asyncio.to_thread(
                _missing_items, ctx, str(request.get("namespace")), spec.targets
            )
            if missing:
                return False, (
                    f"{what} is invalid: spec.targets names ConfigurationItems that do not "
                    f"exist in namespace {request.get('namespace')}: {', '.join(missing)}. "
                    "Create them first (kubectl get ci lists the existing ones) or fix the "
                    "names."
                )
    return True, ""


def _missing_items(ctx: Context, namespace: str, targets: list[str]) -> list[str]:
    assert ctx.kube is not None
    names = {
        str(i["metadata"]["name"])
        for i in ctx.kube.list_namespaced_custom("configurationitems", namespace)
    }
    return [t for t in targets if t not in names]
