"""Admission use cases: the facts a request is judged on, read from the API server, and the
decision `domain.admission` makes from them.

- `guard`: a request to change a protected workload (Deployments, StatefulSets, DaemonSets and
  their `scale` subresource). The facts are read at the moment of the request: the items that
  follow the object, the changes in progress, the service's windows.
- `validate`: OpsLedger's own kinds, beyond what the CRD schema can say: the spec through its
  model (a cron expression, a time zone), and a Change's targets must exist; and change control
  (`domain.change_control`): the requester is who created it, an approved spec is frozen, only
  the operator writes a Change's status, an emergency change needs the break-glass right.
- `mutate`: a Change being created gets its requester from the request's authenticated user.

Each returns (allowed, message); a failure reading the facts raises, and the webhook denies with
the reason. Also here: who the operator is, and the ValidatingWebhookConfiguration written and
removed in the local environment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from opsledger.domain import admission, change_control
from opsledger.domain.admission import ActiveChange, Facts, Guardian, Review
from opsledger.domain.observe import api_group
from opsledger.domain.validation import describe
from opsledger.domain.windows import decide
from opsledger.models.change import ChangeSpec
from opsledger.models.configitem import ConfigurationItemSpec
from opsledger.models.incident import IncidentSpec
from opsledger.models.request import ServiceRequestSpec
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.services import calendars
from opsledger.services.context import Context

# What the guard protects, by resource: (API group, kind).
WORKLOADS = {
    "deployments": ("apps", "Deployment"),
    "statefulsets": ("apps", "StatefulSet"),
    "daemonsets": ("apps", "DaemonSet"),
    "replicasets": ("apps", "ReplicaSet"),
    "cronjobs": ("batch", "CronJob"),
    "jobs": ("batch", "Job"),
}
_KINDS = frozenset(WORKLOADS.values())
ITEM_KIND = "ConfigurationItem"
# Resources that reach a workload through another object: its Pods (deleted, exec'd into,
# attached to, given a debug container) and the autoscalers that scale it.
REACHING = ("pods", "horizontalpodautoscalers")
# Workloads that may belong to a protected one above them (a Deployment's ReplicaSets, a
# CronJob's Jobs): creating, changing or deleting one reaches its owner.
OWNED = frozenset({"replicasets", "jobs"})
# What may adopt a Pod created with its labels (a ReplicaSet adopts an orphan it selects).
ADOPTERS = (
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
)
_POD_ACTIONS = {
    (None, "DELETE"): "delete",
    (None, "UPDATE"): "change",
    ("eviction", "CREATE"): "evict",
    ("exec", "CONNECT"): "exec into",
    ("attach", "CONNECT"): "attach to",
    ("ephemeralcontainers", "UPDATE"): "add a debug container to",
}
SPEC_MODELS: dict[str, type[BaseModel]] = {
    "changes": ChangeSpec,
    "servicelevels": ServiceLevelSpec,
    "incidents": IncidentSpec,
    "configurationitems": ConfigurationItemSpec,
    "servicerequests": ServiceRequestSpec,
}


async def operator_identity(ctx: Context) -> str:
    """The operator's user name: from the settings, or asked of the API server."""
    assert ctx.kube is not None
    if ctx.settings.operator_username:
        return ctx.settings.operator_username
    return await asyncio.to_thread(ctx.kube.whoami)


async def put_configuration(ctx: Context, body: dict[str, Any]) -> None:
    """Create or replace the (Validating or Mutating) webhook configuration `body`."""
    assert ctx.kube is not None
    await asyncio.to_thread(ctx.kube.put_webhook_configuration, body)


async def remove_configuration(ctx: Context, kind: str, name: str) -> None:
    """Delete the webhook configuration `name` (when there is a client to do it)."""
    if ctx.kube is not None:
        await asyncio.to_thread(ctx.kube.delete_webhook_configuration, kind, name)


def malformed(request: Mapping[str, Any]) -> str | None:
    """What makes a request's objects unreadable (the API server sends mappings; anything else
    is refused with the reason, not a stack trace)."""
    for field in ("object", "oldObject"):
        obj = request.get(field)
        if obj is None:
            continue
        if not isinstance(obj, Mapping):
            return f"request.{field} must be an object"
        for part in ("metadata", "spec"):
            if obj.get(part) is not None and not isinstance(obj.get(part), Mapping):
                kind = type(obj[part]).__name__
                return f"{part} must be an object (a mapping of fields), not {kind}"
    if not isinstance(request.get("userInfo") or {}, Mapping):
        return "request.userInfo must be an object"
    return None


async def guard(ctx: Context, operator: str | None, request: Mapping[str, Any]) -> tuple[bool, str]:
    """May this request change (or remove, or reach into) the workload it concerns, now?"""
    wrong = malformed(request)
    if wrong:
        return False, f"OpsLedger cannot read this request: {wrong}."
    resource = request.get("resource") or {}
    plural = str(resource.get("resource", ""))
    if plural not in WORKLOADS and plural not in REACHING:
        return True, f"{plural} is not guarded"
    base = Review(
        operation=str(request.get("operation", "")),
        username=str((request.get("userInfo") or {}).get("username", "")),
        namespace=str(request.get("namespace") or ""),
        kind=WORKLOADS[plural][1] if plural in WORKLOADS else "",
        name=str(request.get("name") or ""),
        subresource=request.get("subResource") or None,
        old=request.get("oldObject"),
        new=request.get("object"),
    )
    if admission.exempt(base, operator) is not None:
        return True, ""
    if plural == "pods" and base.subresource == "eviction" and await _drains(ctx, request):
        return True, "an eviction by someone who may drain nodes"
    if plural in WORKLOADS:
        api_version = f"{resource.get('group')}/{resource.get('version')}"
        subjects = [(base, api_version)]
        if plural in OWNED:
            subjects += await asyncio.to_thread(_owned, ctx, api_version, base)
    else:
        subjects = await asyncio.to_thread(_reached, ctx, plural, base)
    for review, api_version in subjects:
        allowed, message = await _judged(ctx, operator, review, api_version)
        if not allowed:
            return False, message
    return True, ""


async def _judged(
    ctx: Context, operator: str | None, review: Review, api_version: str
) -> tuple[bool, str]:
    facts, parent, levels = await asyncio.to_thread(_facts, ctx, operator, review, api_version)
    if parent is not None and review.parent is None:
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
            now = ctx.clock()
            decision = decide(
                now,
                windows=sl.maintenance_windows,
                freezes=sl.freezes,
                blackouts=sl.blackouts,
                holds=calendars.holds(ctx, [c.name for c in sl.calendars], now),
            )
            window, reason = decision.next, decision.reason
    return False, admission.denial(
        review, guardian, window=window, window_reason=reason, busy=verdict.busy
    )


async def _drains(ctx: Context, request: Mapping[str, Any]) -> bool:
    """Whether the requester may cordon nodes (update them): who drains nodes, whose evictions
    the cluster needs (a namespace user's eviction is judged like a deletion)."""
    assert ctx.kube is not None
    allowed, _ = await asyncio.to_thread(
        ctx.kube.may,
        request.get("userInfo") or {},
        namespace="",
        verb="update",
        group="",
        resource="nodes",
    )
    return allowed


def _owned(ctx: Context, api_version: str, base: Review) -> list[tuple[Review, str]]:
    """The protected workload a ReplicaSet or Job belongs to, reached by this request."""
    assert ctx.kube is not None
    if admission.metadata_only(base):
        return []
    obj = base.old if base.operation == "DELETE" else base.new
    if base.subresource == "scale" or obj is None:
        obj = ctx.kube.get(api_version, base.kind, base.name, base.namespace)
    if obj is None:
        return []
    owner = _top_owner(ctx, obj, base.namespace)
    if owner is None:
        return []
    verb = {"CREATE": "create", "DELETE": "delete"}.get(base.operation, "change")
    if base.subresource == "scale":
        verb = "scale"
    name = base.name or str((obj.get("metadata") or {}).get("generateName") or "")
    return [_reaching(base, owner[0], owner[1], f"{verb} {base.kind} {name}")]


def _reached(ctx: Context, plural: str, base: Review) -> list[tuple[Review, str]]:
    """The workloads a request on a Pod or an autoscaler reaches, as reviews of them."""
    kube = ctx.kube
    assert kube is not None
    if plural == "pods":
        return _pod_reached(ctx, base)
    # An autoscaler: the workload it scales, before and after the request.
    found = []
    for hpa in (base.new, base.old):
        ref = ((hpa or {}).get("spec") or {}).get("scaleTargetRef") or {}
        if not ref.get("kind") or not ref.get("name"):
            continue
        if base.operation == "UPDATE" and (base.old or {}).get("spec") == (base.new or {}).get(
            "spec"
        ):
            return []  # metadata only
        # The autoscaler's controller goes by group and kind alone, whatever the version says
        # ("apps/v2" scales apps/v1 Deployments): so does the guard.
        group = api_group(str(ref.get("apiVersion") or "apps/v1"))
        if (group, ref.get("kind")) not in _KINDS:
            continue
        api_version = f"{group}/v1"
        scaled = kube.get(api_version, str(ref["kind"]), str(ref["name"]), base.namespace)
        if scaled is not None:
            action = f"point HorizontalPodAutoscaler {base.name} at"
            found.append(_reaching(base, api_version, scaled, action))
    return found


def _pod_reached(ctx: Context, base: Review) -> list[tuple[Review, str]]:
    """The workload a request on one of its Pods reaches."""
    assert ctx.kube is not None
    if base.operation == "CREATE" and base.subresource is None:
        return _adopting(ctx, base)
    action = _POD_ACTIONS.get((base.subresource, base.operation))
    if action is None or (action == "change" and admission.metadata_only(base)):
        return []  # labels and annotations do not change what a Pod runs
    pod = base.old if base.operation in ("DELETE", "UPDATE") else None
    if pod is None:
        pod = ctx.kube.get("v1", "Pod", base.name, base.namespace)
    owner = _top_owner(ctx, pod, base.namespace) if pod is not None else None
    if owner is None:
        return []
    api_version, workload = owner
    return [_reaching(base, api_version, workload, f"{action} Pod {base.name}")]


def _adopting(ctx: Context, base: Review) -> list[tuple[Review, str]]:
    """A Pod created with an owner, or with labels a workload's selector matches (its
    controller would adopt it, and may then delete the workload's own Pods instead), reaches
    that workload."""
    assert ctx.kube is not None
    pod = base.new or {}
    name = base.name or str((pod.get("metadata") or {}).get("generateName") or "")
    found = []
    owner = _top_owner(ctx, pod, base.namespace)
    if owner is not None:
        found.append(_reaching(base, owner[0], owner[1], f"create Pod {name} owned by it"))
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if not labels or owner is not None:
        return found
    for api_version, kind in ADOPTERS:
        for adopter in ctx.kube.list_namespaced(api_version, kind, base.namespace):
            selector = (adopter.get("spec") or {}).get("selector") or {}
            if not admission.selects(selector, labels):
                continue
            top = _top_owner(ctx, adopter, base.namespace) or (api_version, adopter)
            adopter_name = (adopter.get("metadata") or {}).get("name")
            action = f"create Pod {name}, which {kind} {adopter_name} would adopt"
            found.append(_reaching(base, top[0], top[1], action))
    return found


def _reaching(
    base: Review, api_version: str, workload: Mapping[str, Any], action: str
) -> tuple[Review, str]:
    review = Review(
        operation=base.operation,
        username=base.username,
        namespace=base.namespace,
        kind=str(workload.get("kind", "")),
        name=str((workload.get("metadata") or {}).get("name", "")),
        subresource="reach",
        parent=workload,
        through=action,
    )
    return review, api_version


def _top_owner(
    ctx: Context, obj: Mapping[str, Any], namespace: str
) -> tuple[str, dict[str, Any]] | None:
    """The workload at the top of `obj`'s chain of controllers (Pod → ReplicaSet →
    Deployment, Pod → Job → CronJob), with its apiVersion; None for a Pod of no workload."""
    assert ctx.kube is not None
    found: tuple[str, dict[str, Any]] | None = None
    current: Mapping[str, Any] = obj
    for _ in range(3):
        owners = (current.get("metadata") or {}).get("ownerReferences") or []
        ref = next((o for o in owners if o.get("controller")), None)
        if ref is None or (api_group(str(ref.get("apiVersion"))), ref.get("kind")) not in _KINDS:
            break
        try:
            owner = ctx.kube.get(
                str(ref["apiVersion"]), str(ref["kind"]), str(ref["name"]), namespace
            )
        except LookupError:
            break
        if owner is None:
            break
        found, current = (str(ref["apiVersion"]), owner), owner
    return found


def _facts(
    ctx: Context, operator: str | None, review: Review, api_version: str
) -> tuple[Facts, dict[str, Any] | None, dict[str, Any]]:
    """Items following the object, changes in progress, the namespace's service levels."""
    kube = ctx.kube
    assert kube is not None
    parent = None
    if review.subresource == "scale" and review.parent is None:
        parent = kube.get(api_version, review.kind, review.name, review.namespace)
    guardians = []
    if review.kind == ITEM_KIND:  # the protecting item itself
        spec = (review.old or {}).get("spec") or {}
        guardians.append(Guardian(review.name, True, spec.get("service"), spec.get("criticality")))
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
                    created=str(item["metadata"].get("creationTimestamp") or ""),
                )
            )
    changes = [
        ActiveChange(
            str(c["metadata"]["name"]),
            tuple((c.get("spec") or {}).get("targets") or ()),
            permit=not (c.get("spec") or {}).get("plan"),
            requester=((c.get("spec") or {}).get("requester") or {}).get("username"),
        )
        for c in kube.list_namespaced_custom("changes", review.namespace)
        if change_control.verified_in_progress(c)
    ]
    levels = {}
    if any(g.service for g in guardians):
        for level in kube.list_namespaced_custom("servicelevels", review.namespace):
            spec = level.get("spec") or {}
            if spec.get("service"):
                levels[str(spec["service"])] = spec
    facts = Facts(operator=operator, guardians=guardians, changes=changes)
    return facts, parent, levels


# The kinds whose creator is recorded as spec.requester.
REQUESTED = ("changes", "incidents", "servicerequests")


async def mutate(ctx: Context, operator: str | None, request: Mapping[str, Any]) -> list[Any]:
    """The JSON patch for a request: a Change or Incident being created gets its requester,
    who the API server says is creating it."""
    plural = str((request.get("resource") or {}).get("resource", ""))
    if (
        plural not in REQUESTED
        or request.get("operation") != "CREATE"
        or request.get("subResource")
    ):
        return []
    if malformed(request):
        return []  # nothing to record; the validating webhook refuses it, saying why
    new = request.get("object") or {}
    return change_control.requester_patch(new.get("spec"), request.get("userInfo") or {})


async def validate(
    ctx: Context, operator: str | None, request: Mapping[str, Any]
) -> tuple[bool, str]:
    """Is this OpsLedger object's spec valid, do a Change's targets exist, and may this user
    make this change to it?"""
    wrong = malformed(request)
    if wrong:
        return False, f"The request is invalid: {wrong}. Fix the manifest and apply it again."
    refused = await _refusal(ctx, operator, request)
    return (False, refused) if refused else (True, "")


async def _refusal(ctx: Context, operator: str | None, request: Mapping[str, Any]) -> str | None:
    plural = str((request.get("resource") or {}).get("resource", ""))
    model = SPEC_MODELS.get(plural)
    new = request.get("object") or {}
    old = request.get("oldObject") or {}
    user = request.get("userInfo") or {}
    username = str(user.get("username", ""))
    what = f"{new.get('kind', plural)} {request.get('namespace')}/{request.get('name')}"
    if plural == "changes" and request.get("subResource") == "status":
        return change_control.status_refusal(what, username, operator)
    if model is None or username == operator:
        return None
    if plural == "configurationitems":
        refused = await _unprotecting(ctx, operator, request)
    elif plural == "changes":
        refused = await _change_control(ctx, request, what, user)
    elif plural == "servicerequests" and request.get("operation") == "CREATE":
        # the person an approval-needing request's change is made for: who really asked
        asked = new.get("spec") or {}
        refused = change_control.requester_refusal(what, asked, user, kind="ServiceRequest")
    else:
        refused = None
    unchanged = request.get("operation") == "UPDATE" and old.get("spec") == new.get("spec")
    if refused or unchanged or request.get("operation") == "DELETE":
        return refused  # (an unchanged spec: metadata only, finalizers, annotations)
    try:
        spec = model.model_validate(dict(new.get("spec") or {}))
    except ValidationError as exc:
        return f"{what} is invalid: {describe(exc)}. Fix the manifest and apply it again."
    if isinstance(spec, ChangeSpec) and (spec.targets or spec.plan):
        return await _targets_refusal(ctx, request, what, spec)
    return None


async def _unprotecting(
    ctx: Context, operator: str | None, request: Mapping[str, Any]
) -> str | None:
    """Deleting a protecting ConfigurationItem, turning its `protected` off or retiring it opens
    its source to everyone: it needs an approved Change in progress that targets the item."""
    old = request.get("oldObject") or {}
    if not _protecting(old):
        return None
    operation = str(request.get("operation", ""))
    new = request.get("object") or {}
    if operation == "UPDATE" and _protecting(new):
        return None
    review = Review(
        operation=operation,
        username=str((request.get("userInfo") or {}).get("username", "")),
        namespace=str(request.get("namespace") or ""),
        kind=ITEM_KIND,
        name=str(request.get("name") or ""),
        subresource="protection",
        old=old,
        new=new,
    )
    allowed, message = await _judged(ctx, operator, review, "opsledger.io/v1alpha1")
    return None if allowed else message


def _protecting(item: Mapping[str, Any]) -> bool:
    """Whether an item protects its source: spec.protected, and not retired (the operator takes
    the guard's label off a retired item's source)."""
    spec = item.get("spec") or {}
    return bool(spec.get("protected")) and spec.get("lifecycle") != "retired"


async def _targets_refusal(
    ctx: Context, request: Mapping[str, Any], what: str, spec: ChangeSpec
) -> str | None:
    """A Change's targets must exist, and each plan step must patch the source of one of them
    (so the approval policy, the risk and the guard all see what the plan touches)."""
    old_spec = (request.get("oldObject") or {}).get("spec") or {}
    old_targets = set(old_spec.get("targets") or ())
    old_plan = old_spec.get("plan") or []
    new_plan = [s.model_dump(mode="json", by_alias=True) for s in spec.plan]
    if set(spec.targets) == old_targets and (not spec.plan or old_plan == new_plan):
        return None
    namespace = str(request.get("namespace"))
    items = await asyncio.to_thread(_items, ctx, namespace)
    missing = [t for t in spec.targets if t not in items]
    if missing:
        return (
            f"{what} is invalid: spec.targets names ConfigurationItems that do not exist in "
            f"namespace {namespace}: {', '.join(missing)}. Create them first (kubectl get ci "
            "lists the existing ones) or fix the names."
        )
    sources = {items[t] for t in spec.targets}
    for index, step in enumerate(spec.plan):
        ref = step.target
        if (api_group(ref.api_version), ref.kind, ref.name) not in sources:
            return (
                f"{what} is invalid: spec.plan[{index}] patches {ref.kind} {ref.name}, which "
                "is not the source of any item in spec.targets. Add the ConfigurationItem that "
                "follows it to spec.targets, so its owners approve and the guard knows it."
            )
    return None


async def _change_control(
    ctx: Context, request: Mapping[str, Any], what: str, user: Mapping[str, Any]
) -> str | None:
    """Who may create or edit this Change: the refusal, or None."""
    new = request.get("object") or {}
    spec = new.get("spec") or {}
    namespace = str(request.get("namespace") or "")
    if request.get("operation") == "UPDATE":
        return change_control.frozen_refusal(what, request.get("oldObject") or {}, new)
    refused = change_control.requester_refusal(what, spec, user) or (
        change_control.on_behalf_refusal(what, spec)
    )
    if refused or not change_control.needs_emergency_right(spec):
        return refused
    assert ctx.kube is not None
    allowed, reason = await asyncio.to_thread(
        ctx.kube.may,
        user,
        namespace=namespace,
        verb="create",
        group="opsledger.io",
        resource="changes",
        subresource=change_control.EMERGENCY_SUBRESOURCE,
    )
    if allowed:
        return None
    return change_control.emergency_refusal(what, namespace, str(user.get("username")), reason)


def _items(ctx: Context, namespace: str) -> dict[str, tuple[str, str, str]]:
    """Each item in `namespace` by name, with its source (API group, kind, name)."""
    assert ctx.kube is not None
    found = {}
    for item in ctx.kube.list_namespaced_custom("configurationitems", namespace):
        source = (item.get("spec") or {}).get("source") or {}
        found[str(item["metadata"]["name"])] = (
            api_group(str(source.get("apiVersion", ""))),
            str(source.get("kind", "")),
            str(source.get("name", "")),
        )
    return found
