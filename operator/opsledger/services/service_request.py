"""ServiceRequest use cases: accept a request against its catalog item as the CMDB's protected
branch holds it, make the standard Change that fulfils it (or wait for a person), follow that
Change to its end, keep the fulfilment target, and commit the request's record.

The rules (parameter types and bounds, the Change made, the phase it maps to) are in
`domain/catalog.py`; this module reads the catalog, creates the Change and reports.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsledger.domain import catalog, standard_changes
from opsledger.domain.conditions import READY
from opsledger.domain.durations import format_duration, go_duration
from opsledger.domain.outcome import Outcome
from opsledger.domain.records import record_path, to_yaml
from opsledger.domain.times import parse_time, stamp
from opsledger.domain.views import CHANGE_PHASES, SERVICE_LEVELS
from opsledger.models import CHANGE, SERVICE_REQUEST
from opsledger.models.change import ChangeSpec
from opsledger.models.common import API_GROUP, API_VERSION, ConditionStatus
from opsledger.models.records import RecordMetadata, ServiceRequestRecord
from opsledger.models.request import (
    FINAL_PHASES,
    CatalogItem,
    RequestPhase,
    RequestState,
    ServiceRequestSpec,
)
from opsledger.services.change_approval import find_template
from opsledger.services.context import Context
from opsledger.services.errors import CMDBUnavailableError, RetryLaterError
from opsledger.services.records import call, write_record

SLA_BREACHED = "SLABreached"
# The status fields the CMDB record keeps (not conditions, nor Kopf's bookkeeping).
_RECORDED = frozenset(
    {
        "phase",
        "title",
        "service",
        "catalogCommit",
        "parameters",
        "change",
        "submittedAt",
        "fulfilledAt",
        "timeToFulfil",
        "sla",
        "timeline",
    }
)
REQUEST_LABEL = "opsledger.io/service-request"


def change_name(request: str) -> str:
    """The Change that fulfils request `request`: one name, so it is made once."""
    return f"req-{request}"[:253].rstrip("-.")


@dataclass
class _Found:
    item: CatalogItem | None = None
    commit: str | None = None
    refusal: str | None = None  # why the request cannot be accepted (it is then Rejected)


async def _item(ctx: Context, name: str, bound: str | None) -> _Found:
    """The catalog item: at the commit the request was accepted under, or else as the
    protected branch holds it now."""
    assert ctx.cmdb is not None
    path = catalog.item_path(name)
    commit: str | None = bound
    if bound:
        content = await call(ctx.cmdb.read_at, bound, path)
    else:
        await call(ctx.cmdb.refresh)
        versions = await call(ctx.cmdb.history, path)
        commit, content = (versions[-1][0], versions[-1][3]) if versions else (None, None)
    if content is None:
        return _Found(
            refusal=f"{path} is not on the CMDB repository's {ctx.settings.cmdb_branch} branch: "
            "there is no catalog item of that name. Ask for it to be added (by pull request), "
            "or request an item the catalog has"
        )
    try:
        return _Found(catalog.parse_item(path, content), commit)
    except catalog.CatalogError as exc:
        return _Found(refusal=f"the catalog item cannot be used: {exc}")


def _created(ctx: Context, body: Mapping[str, Any], spec: dict[str, Any]) -> str | None:
    """Create the fulfilling Change (once); None, or why it could not be."""
    assert ctx.kube is not None
    meta = body["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    wanted = change_name(name)
    obj = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": CHANGE.kind,
        "metadata": {
            "name": wanted,
            "namespace": namespace,
            "labels": {REQUEST_LABEL: name},
            "ownerReferences": [
                {
                    "apiVersion": f"{API_GROUP}/{API_VERSION}",
                    "kind": SERVICE_REQUEST.kind,
                    "name": name,
                    "uid": meta["uid"],
                }
            ],
        },
        "spec": spec,
    }
    if ctx.kube.create_custom(CHANGE.plural, namespace, obj) is not None:
        return None
    existing = ctx.kube.get_custom(CHANGE.plural, wanted, namespace) or {}
    owners = (existing.get("metadata") or {}).get("ownerReferences") or []
    if any(o.get("uid") == meta["uid"] for o in owners):
        return None  # made before a restart: the same change, not a second one
    return (
        f"a Change named {wanted} already exists and does not fulfil this request: delete it, "
        "or make the request again under another name"
    )


def _cancel(ctx: Context, namespace: str, name: str) -> None:
    assert ctx.kube is not None
    with contextlib.suppress(LookupError):
        ctx.kube.patch_spec(CHANGE.plural, name, namespace, {"cancelled": True})


def _fit(spec: dict[str, Any], template_text: str | None, path: str, items: Any) -> list[str]:
    if template_text is None:
        return [f"its standard-change template {path} is not on the protected branch"]
    try:
        template = standard_changes.parse_template(path, template_text)
        change = ChangeSpec.model_validate(spec)
    except ValueError as exc:
        return [str(exc)]
    return standard_changes.misfits(template, change, items)


def _sla(
    namespace: str, item: CatalogItem | None, name: str, views: Mapping[str, Any]
) -> str | None:
    if item is None or not item.service:
        return None
    levels = views[SERVICE_LEVELS].get((namespace, item.service), ())
    targets = ((levels[0] if levels else {}).get("spec") or {}).get("requestTargets") or []
    return catalog.fulfil_target(targets, name)


@dataclass
class _Look:
    """One look at a request: what it reads, and what it reports."""

    ctx: Context
    body: Mapping[str, Any]
    spec: ServiceRequestSpec
    views: Mapping[str, Any]
    outcome: Outcome = field(default_factory=Outcome)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])


@dataclass
class _Step:
    """What this look at the request decided."""

    phase: RequestPhase
    detail: str | None = None
    change: str | None = None


async def _by_change(look: _Look, item: CatalogItem, values: dict[str, Any]) -> _Step:
    """Fulfilment by a change: make it once (if it fits its template), then follow its phase."""
    ctx, body, spec = look.ctx, look.body, look.spec
    meta = body["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    wanted = change_name(name)
    change = (body.get("status") or {}).get("change")
    if not change:
        made = catalog.render_change(item, spec.item, name, values)
        if item.approval == "required" and spec.requester is not None:
            made["onBehalfOf"] = spec.requester.model_dump(mode="json", exclude_none=True)
        try:
            template = await find_template(ctx, ChangeSpec.model_validate(made), namespace)
            misfits = _fit(made, template.content, template.path, template.items)
        except ValueError as exc:
            misfits = [f"the Change it makes is invalid: {exc}"]
        if misfits:
            return _Step(
                RequestPhase.REJECTED,
                f"the change catalog item {spec.item} makes with these parameters leaves its "
                f"template: {'; '.join(misfits)}",
            )
        problem = await asyncio.to_thread(_created, ctx, body, made)
        if problem is not None:
            return _Step(RequestPhase.REJECTED, problem)
        change = wanted
        look.timeline.append({"at": stamp(ctx.clock()), "event": "ChangeCreated", "detail": wanted})
        look.outcome.event(
            "Normal", "ChangeCreated", f"Change {wanted} ({made['type']}) fulfils this request"
        )
    seen = look.views[CHANGE_PHASES].get(f"{namespace}/{change}", ())
    change_phase, message = seen[0] if seen else (None, None)
    return _Step(catalog.phase_of(change_phase), message, change)


async def _decide(look: _Look, found: _Found, values: dict[str, Any]) -> _Step:
    ctx, spec = look.ctx, look.spec
    status = look.body.get("status") or {}
    item, change = found.item, status.get("change")
    if found.refusal is not None or item is None:
        return _Step(RequestPhase.REJECTED, found.refusal)
    if spec.state == RequestState.CANCELLED:
        if change and ctx.kube is not None:
            await asyncio.to_thread(_cancel, ctx, look.namespace, change)
        return _Step(RequestPhase.CANCELLED, "cancelled by the requester", change)
    if item.fulfilment is None:
        if spec.state == RequestState.FULFILLED:
            return _Step(RequestPhase.FULFILLED, spec.resolution)
        return _Step(RequestPhase.WAITING_FOR_FULFILMENT)
    if ctx.kube is None:
        return _Step(RequestPhase.SUBMITTED, "no Kubernetes client to make its change with")
    return await _by_change(look, item, values)


async def reconcile(
    ctx: Context, body: Mapping[str, Any], spec: ServiceRequestSpec, views: Mapping[str, Any]
) -> tuple[Outcome, Exception | None]:
    """Everything that follows from the request as it is now: accepted or refused, its change
    made and followed, its target, its record."""
    meta, status = body["metadata"], dict(body.get("status") or {})
    now = ctx.clock()
    submitted = parse_time(status.get("submittedAt")) or parse_time(meta["creationTimestamp"])
    assert submitted is not None
    before = RequestPhase(status["phase"]) if status.get("phase") else None
    look = _Look(ctx, body, spec, views, timeline=list(status.get("timeline") or []))
    outcome, timeline = look.outcome, look.timeline
    if not timeline:
        who = spec.requester.username if spec.requester else "someone unrecorded"
        timeline.append({"at": stamp(submitted), "event": "Submitted", "detail": f"by {who}"})
    if before in FINAL_PHASES:  # closed: only its record, should it not be in yet
        return outcome, await _commit(ctx, body, spec, status)
    if ctx.cmdb is None:
        outcome.condition(
            READY, ConditionStatus.FALSE, "NoCMDB", "no CMDB remote is configured: no catalog"
        )
        return outcome, None
    try:
        found = await _item(ctx, spec.item, status.get("catalogCommit"))
    except CMDBUnavailableError as exc:
        outcome.condition(
            READY, ConditionStatus.UNKNOWN, "CMDBUnavailable", f"cannot read the catalog: {exc}"
        )
        return outcome, RetryLaterError(str(exc), delay=ctx.settings.cmdb_retry_interval)
    values: dict[str, Any] = {}
    if found.item is not None and found.refusal is None:
        values, problems = catalog.accept(found.item, spec.parameters)
        if problems:
            found.refusal = (
                f"the parameters do not fit catalog item {spec.item}: {'; '.join(problems)}. "
                "Make a new request with values the item allows"
            )
    step = await _decide(look, found, values)
    fulfilled = parse_time(status.get("fulfilledAt"))
    if step.phase == RequestPhase.FULFILLED and fulfilled is None:
        fulfilled = now
    if step.phase not in (before, RequestPhase.SUBMITTED):
        _moved(outcome, timeline, step, now)
    new_status: dict[str, Any] = {
        "phase": step.phase.value,
        "requester": spec.requester.username if spec.requester else None,
        "title": found.item.title if found.item else None,
        "service": found.item.service if found.item else None,
        "catalogCommit": found.commit,
        "parameters": values if found.refusal is None else {},
        "change": step.change,  # by name: its phase is read from the change views
        "submittedAt": stamp(submitted),
        "fulfilledAt": stamp(fulfilled),
        "timeToFulfil": format_duration(fulfilled - submitted) if fulfilled else None,
        "sla": _target(look, found.item, step, submitted, fulfilled),
        "timeline": timeline[-50:],
    }
    outcome.status.update(new_status)
    _ready(outcome, step)
    return outcome, await _commit(ctx, body, spec, new_status)


def _moved(outcome: Outcome, timeline: list[dict[str, Any]], step: _Step, now: datetime) -> None:
    detail = {"detail": step.detail} if step.detail else {}
    timeline.append({"at": stamp(now), "event": step.phase.value, **detail})
    if step.phase in (RequestPhase.REJECTED, RequestPhase.FAILED):
        outcome.event("Warning", f"Request{step.phase.value}", step.detail or step.phase.value)
    elif step.phase == RequestPhase.FULFILLED:
        outcome.event("Normal", "RequestFulfilled", step.detail or "fulfilled")


def _target(
    look: _Look,
    item: CatalogItem | None,
    step: _Step,
    submitted: datetime,
    fulfilled: datetime | None,
) -> dict[str, Any] | None:
    """The fulfilment target from the item's ServiceLevel, and whether it is missed."""
    target = _sla(look.namespace, item, look.spec.item, look.views)
    if target is None:
        return None
    due = submitted + go_duration(target)
    late = (fulfilled or look.ctx.clock()) > due and step.phase != RequestPhase.CANCELLED
    look.outcome.condition(
        SLA_BREACHED,
        ConditionStatus.TRUE if late else ConditionStatus.FALSE,
        "Breached" if late else "WithinTarget",
        f"fulfil by {stamp(due)} ({target} after it was made)",
    )
    return {"fulfilBy": stamp(due), "breached": late}


def _ready(outcome: Outcome, step: _Step) -> None:
    phase, detail, change = step.phase, step.detail, step.change
    if phase in (RequestPhase.REJECTED, RequestPhase.FAILED):
        outcome.condition(READY, ConditionStatus.FALSE, phase.value, detail or phase.value)
        return
    words = {
        RequestPhase.SUBMITTED: "submitted",
        RequestPhase.WAITING_FOR_APPROVAL: f"waiting for Change {change} to be approved "
        "(its pull request merged)",
        RequestPhase.SCHEDULED: f"Change {change} is approved and waits for its window",
        RequestPhase.IN_FULFILMENT: f"Change {change} is being carried out",
        RequestPhase.WAITING_FOR_FULFILMENT: "waiting for a person to fulfil it (they set "
        "spec.state: Fulfilled and spec.resolution)",
        RequestPhase.FULFILLED: f"fulfilled{f' by Change {change}' if change else ''}",
        RequestPhase.CANCELLED: "cancelled",
    }
    outcome.condition(READY, ConditionStatus.TRUE, phase.value, words.get(phase, phase.value))


async def _commit(
    ctx: Context, body: Mapping[str, Any], spec: ServiceRequestSpec, status: Mapping[str, Any]
) -> Exception | None:
    meta = body["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    record = ServiceRequestRecord.model_validate(
        {
            "metadata": RecordMetadata(
                cluster=ctx.settings.cluster, namespace=namespace, name=name
            ),
            "spec": ctx.redactor.mapping(
                {
                    k: ctx.redactor.text(v) if isinstance(v, str) else v
                    for k, v in spec.model_dump(mode="json", by_alias=True).items()
                }
            ),
            **ctx.redactor.mapping(
                {k: v for k, v in status.items() if k in _RECORDED and v is not None}
            ),
        }
    )
    path = record_path(ctx.settings.cluster, namespace, SERVICE_REQUEST.plural, name)
    reason = f"ServiceRequest {namespace}/{name}: {status['phase']} ({spec.item})"
    written = await write_record(ctx, path, to_yaml(record), reason)
    if written.error is None:
        return None
    error = RetryLaterError(
        f"service request record not committed yet: {written.error}",
        delay=ctx.settings.cmdb_retry_interval,
    )
    error.__cause__ = written.error
    return error


def open_request(body: Mapping[str, Any]) -> bool:
    """Whether the follow-up timer should look again: the request has been accepted (the spec
    handler made its change, if any: the timer, which Kopf runs beside it, never makes one)
    and is not closed."""
    phase = (body.get("status") or {}).get("phase")
    return bool(phase) and phase not in {p.value for p in FINAL_PHASES}
