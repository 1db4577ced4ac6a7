"""Incident handlers: priority, lifecycle and timeline, SLA timers, and the CMDB record.

People drive an incident through its spec (state, assignee, resolution); the operator records
when things happened, computes due times from the service's ServiceLevel, flags breaches (a
timer looks again at each next deadline), and commits the incident's record on each change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import kopf

from opsledger.adapters.gitcmdb import CMDBError
from opsledger.domain.conditions import READY, find, parse_conditions, set_condition
from opsledger.domain.correlation import (
    CompletedChange,
    IncidentFact,
    Problem,
    find_problems,
    problem_of,
    suspected_cause,
)
from opsledger.domain.durations import format_duration, go_duration
from opsledger.domain.impact import ImpactGraph
from opsledger.domain.incidents import (
    Lifecycle,
    advance,
    next_deadline,
    sla,
    targets_for,
)
from opsledger.domain.priority import matrix_with, priority
from opsledger.domain.records import record_path, to_yaml
from opsledger.handlers.common import (
    CHANGE_PLANS,
    context,
    forget_on_delete,
    on_spec,
    validated_spec,
)
from opsledger.handlers.configitem import RELATIONS
from opsledger.models import CONFIGURATION_ITEM, INCIDENT
from opsledger.models.common import ConditionStatus
from opsledger.models.incident import IncidentSpec, IncidentState
from opsledger.models.records import IncidentRecord, ProblemRecord, RecordMetadata
from opsledger.models.settings import Settings
from opsledger.services.context import Context

TARGETS = "incident_targets"  # (namespace, service) → the ServiceLevel's incidentTargets
FACTS = "incident_facts"  # namespace → what correlation needs of each incident there
SLA_BREACHED = "SLABreached"


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def lifecycle_from(body: Mapping[str, Any]) -> Lifecycle:
    """The lifecycle recorded in status (a new one for a new incident)."""
    status = body.get("status") or {}
    opened = _time(status.get("openedAt")) or _time(body["metadata"]["creationTimestamp"])
    assert opened is not None
    return Lifecycle(
        state=IncidentState(status.get("state") or IncidentState.NEW),
        opened_at=opened,
        acknowledged_at=_time(status.get("acknowledgedAt")),
        resolved_at=_time(status.get("resolvedAt")),
        assignee=status.get("assignee"),
        priority=status.get("priority"),
        timeline=[{**e, "at": _time(e.get("at"))} for e in status.get("timeline") or []],
    )


def correlate(
    ctx: Context, body: Mapping[str, Any], spec: IncidentSpec, indexes: Mapping[str, Any]
) -> tuple[Problem | None, str | None]:
    """The problem this incident recurs under, and the change suspected of causing it."""
    meta = body["metadata"]
    namespace, name = str(meta.get("namespace")), str(meta["name"])
    status = body.get("status") or {}
    opened = lifecycle_from(body).opened_at
    me = IncidentFact(
        name=name,
        opened_at=opened,
        items=tuple(spec.configuration_items),
        service=spec.service,
        state=str(spec.state),
        root_cause=spec.root_cause,
        resolution=spec.resolution,
        resolved_at=_time(status.get("resolvedAt")),
        problem=status.get("problem"),
    )
    others = [f for f in (indexes.get(FACTS) or {}).get(namespace, ()) if f.name != name]
    settings = ctx.settings
    problems = find_problems(
        [*others, me],
        threshold=settings.problem_threshold,
        period=go_duration(settings.problem_period),
    )
    suspect = status.get("suspectedCause")
    if suspect is None and spec.configuration_items:
        relations = indexes.get(RELATIONS) or {}
        graph = ImpactGraph({k: [p for v in store for p in v] for k, store in relations.items()})
        completed = [
            CompletedChange(str(e[0]), tuple(f"{namespace}/{t}" for t in e[1]), finished)
            for e in (indexes.get(CHANGE_PLANS) or {}).get(namespace, ())
            if e[4] == "Completed" and (finished := _time(e[5])) is not None
        ]
        suspect = suspected_cause(
            {f"{namespace}/{i}" for i in spec.configuration_items},
            opened,
            completed,
            window=go_duration(settings.suspect_window),
            dependents=graph.dependents,
        )
    return problem_of(name, problems), suspect


def render(
    ctx: Context,
    body: Mapping[str, Any],
    spec: IncidentSpec,
    targets_index: Mapping[Any, Any],
    *,
    problem: str | None = None,
    suspect: str | None = None,
) -> tuple[dict[str, Any], list[tuple[str, ConditionStatus, str, str]], IncidentRecord]:
    """Status fields, condition updates and the CMDB record for the incident as it is now."""
    now = ctx.clock()
    matrix = matrix_with(ctx.settings.priority_matrix)
    prio = priority(spec.impact, spec.urgency, matrix).value
    life = advance(
        lifecycle_from(body), state=spec.state, assignee=spec.assignee, priority=prio, now=now
    )
    namespace = body["metadata"].get("namespace", "")
    store = targets_index.get((namespace, spec.service or ""), [])
    incident_targets = next(iter(store), ()) if store else ()
    targets = targets_for(prio, incident_targets)
    status: dict[str, Any] = {
        "priority": prio,
        "state": life.state.value,
        "assignee": life.assignee,
        "openedAt": _stamp(life.opened_at),
        "acknowledgedAt": _stamp(life.acknowledged_at),
        "resolvedAt": _stamp(life.resolved_at),
        "timeToAcknowledge": format_duration(life.acknowledged_at - life.opened_at)
        if life.acknowledged_at
        else None,
        "timeToResolve": format_duration(life.resolved_at - life.opened_at)
        if life.resolved_at
        else None,
        "timeline": [{**e, "at": _stamp(e["at"])} for e in life.timeline],
        # Links are sticky, so absent ones are not written: another incident's handler may be
        # linking this one to a problem at this very moment.
        **({"problem": problem} if problem else {}),
        **({"suspectedCause": suspect} if suspect else {}),
    }
    conditions: list[tuple[str, ConditionStatus, str, str]] = [
        (
            READY,
            ConditionStatus.TRUE,
            "Accepted",
            f"{prio} ({spec.impact} impact × {spec.urgency} urgency)",
        ),
    ]
    if targets is None:
        status["sla"] = None
        conditions.append(
            (
                SLA_BREACHED,
                ConditionStatus.UNKNOWN,
                "NoTargets",
                f"no ServiceLevel for service {spec.service!r} in {namespace} sets "
                f"incidentTargets for {prio}",
            )
        )
    else:
        due = sla(life, targets, now)
        status["sla"] = {
            "respondBy": _stamp(due.respond_by),
            "resolveBy": _stamp(due.resolve_by),
            "responseBreached": due.response_breached,
            "resolutionBreached": due.resolution_breached,
        }
        missed = [
            what
            for what, flag in (
                ("response", due.response_breached),
                ("resolution", due.resolution_breached),
            )
            if flag
        ]
        if missed:
            conditions.append(
                (
                    SLA_BREACHED,
                    ConditionStatus.TRUE,
                    "Breached",
                    f"{' and '.join(missed)} target missed (respond by "
                    f"{status['sla']['respondBy']}, resolve by "
                    f"{status['sla']['resolveBy']})",
                )
            )
        else:
            conditions.append(
                (
                    SLA_BREACHED,
                    ConditionStatus.FALSE,
                    "WithinTargets",
                    f"respond by {status['sla']['respondBy']}, resolve by "
                    f"{status['sla']['resolveBy']}",
                )
            )
        status["nextDeadline"] = _stamp(next_deadline(life, due))
    record = IncidentRecord.model_validate(
        {
            "metadata": RecordMetadata(
                cluster=ctx.settings.cluster, namespace=namespace, name=body["metadata"]["name"]
            ),
            "spec": spec,
            **{k: v for k, v in status.items() if k not in ("assignee", "nextDeadline")},
        }
    )
    return status, conditions, record


def _apply(
    ctx: Context,
    body: kopf.Body,
    patch: kopf.Patch,
    status: dict[str, Any],
    updates: list[tuple[str, ConditionStatus, str, str]],
) -> None:
    generation = body.metadata.get("generation")
    conditions = parse_conditions(body.status.get("conditions"))
    for type_, value, reason, message in updates:
        before = find(conditions, type_)
        if (
            type_ == SLA_BREACHED
            and value == ConditionStatus.TRUE
            and (before is None or before.status != value)
        ):
            kopf.event(body, type="Warning", reason="SLABreached", message=message)
        conditions = set_condition(
            conditions,
            type=type_,
            status=value,
            reason=reason,
            message=message,
            now=ctx.clock(),
            generation=generation,
        )
    patch.status.update(status)
    patch.status["conditions"] = [c.to_wire() for c in conditions]
    patch.status["observedGeneration"] = generation


async def _commit(ctx: Context, record: IncidentRecord, reason: str) -> None:
    if ctx.cmdb is None:
        return
    meta = record.metadata
    path = record_path(meta.cluster, meta.namespace, "incidents", meta.name)
    text = to_yaml(record)
    try:
        await ctx.cmdb.write(path, text, reason)
    except CMDBError as exc:
        raise kopf.TemporaryError(
            f"incident record not committed yet: {exc}", delay=ctx.settings.cmdb_retry_interval
        ) from exc


async def _record_problem(ctx: Context, body: kopf.Body, problem: Problem) -> None:
    """Commit the problem's record; link the other incidents and the item when it is new."""
    namespace, name = str(body.metadata.get("namespace")), str(body.metadata.get("name"))
    if body.status.get("problem") != problem.name:
        count = len(problem.incidents)
        kopf.event(
            body,
            type="Warning",
            reason="RecurringIncident",
            message=f"{count} incidents on {problem.subject_kind} {problem.subject}: "
            f"problem {problem.name}",
        )
        if ctx.kube is not None:
            await asyncio.to_thread(_link, ctx, namespace, name, problem)
    if ctx.cmdb is None:
        return
    record = ProblemRecord.model_validate(
        {
            "metadata": RecordMetadata(
                cluster=ctx.settings.cluster, namespace=namespace, name=problem.name
            ),
            "subjectKind": problem.subject_kind,
            "subject": problem.subject,
            "state": problem.state,
            "detectedAt": problem.detected_at,
            "knownError": problem.known_error,
            "workaround": problem.workaround,
            "incidents": [
                {
                    "name": i.name,
                    "openedAt": i.opened_at,
                    "state": i.state,
                    "rootCause": i.root_cause,
                }
                for i in problem.incidents
            ],
        }
    )
    path = record_path(ctx.settings.cluster, namespace, "problems", problem.name)
    try:
        await ctx.cmdb.write(
            path,
            to_yaml(record),
            f"Problem {namespace}/{problem.name}: {len(problem.incidents)} incidents on "
            f"{problem.subject} ({problem.state})",
        )
    except CMDBError as exc:
        raise kopf.TemporaryError(
            f"problem record not committed yet: {exc}", delay=ctx.settings.cmdb_retry_interval
        ) from exc


def _link(ctx: Context, namespace: str, name: str, problem: Problem) -> None:
    """Name the problem in the other incidents' and the item's status."""
    assert ctx.kube is not None
    for other in problem.incidents:
        if other.name != name and other.problem != problem.name:
            with contextlib.suppress(LookupError):
                ctx.kube.patch_status(
                    INCIDENT.plural, other.name, namespace, {"problem": problem.name}
                )
    if problem.subject_kind == CONFIGURATION_ITEM.kind:
        with contextlib.suppress(LookupError):
            ctx.kube.patch_status(
                CONFIGURATION_ITEM.plural, problem.subject, namespace, {"problem": problem.name}
            )


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Attach the Incident handlers to `registry`."""

    @kopf.index("opsledger.io", "v1alpha1", "servicelevels", registry=registry, id=TARGETS)
    def incident_targets(
        *, namespace: str | None, spec: kopf.Spec, **_: Any
    ) -> dict[tuple[str, str], tuple[dict[str, str], ...]]:
        """Empty (not None, which Kopf takes as "keep what was indexed") when there is no
        service, so a ServiceLevel whose service is removed or renamed leaves no stale entry."""
        targets = spec.get("incidentTargets") or []
        if not spec.get("service"):
            return {}
        return {(namespace or "", spec["service"]): tuple(dict(t) for t in targets)}

    @kopf.index("opsledger.io", "v1alpha1", INCIDENT.plural, registry=registry, id=FACTS)
    def incident_facts(
        *,
        namespace: str | None,
        name: str,
        spec: kopf.Spec,
        status: kopf.Status,
        meta: kopf.Meta,
        **_: Any,
    ) -> dict[str, IncidentFact]:
        opened = _time(status.get("openedAt")) or _time(meta.get("creationTimestamp"))
        if opened is None:
            return {}
        return {
            namespace or "": IncidentFact(
                name=name,
                opened_at=opened,
                items=tuple(spec.get("configurationItems") or ()),
                service=spec.get("service"),
                state=str(spec.get("state") or "New"),
                root_cause=spec.get("rootCause"),
                resolution=spec.get("resolution"),
                resolved_at=_time(status.get("resolvedAt")),
                problem=status.get("problem"),
            )
        }

    @on_spec(INCIDENT, registry)
    async def reconcile(
        *, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        ctx = context(memo)
        spec = validated_spec(info=INCIDENT, ctx=ctx, body=body, patch=patch)
        if not isinstance(spec, IncidentSpec):
            return
        problem, suspect = correlate(ctx, body, spec, kwargs)
        status, updates, record = render(
            ctx,
            body,
            spec,
            kwargs[TARGETS],
            problem=problem.name if problem else body.status.get("problem"),
            suspect=suspect,
        )
        _apply(ctx, body, patch, status, updates)
        if suspect and suspect != body.status.get("suspectedCause"):
            kopf.event(
                body,
                type="Warning",
                reason="SuspectedCause",
                message=f"Change {suspect} completed on these items or what they depend on "
                f"shortly before this incident opened",
            )
        if problem is not None:
            await _record_problem(ctx, body, problem)
        ctx.metrics.ready.labels(
            INCIDENT.kind, body.metadata.get("namespace") or "", str(body.metadata.get("name"))
        ).set(1)
        name = f"{body.metadata.get('namespace')}/{body.metadata.get('name')}"
        await _commit(ctx, record, f"Incident {name}: {record.state} ({record.priority})")

    @kopf.timer(
        "opsledger.io",
        "v1alpha1",
        "incidents",
        registry=registry,
        id="sla-clock",
        interval=settings.incident_interval,
        idle=settings.incident_interval,
    )
    async def clock(*, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
        """Flag breaches as deadlines pass (nothing else changes the incident then)."""
        deadline = _time(body.status.get("nextDeadline"))
        ctx = context(memo)
        if deadline is None or ctx.clock() <= deadline:
            return
        try:
            spec = IncidentSpec.model_validate(dict(body.spec))
        except ValueError:
            return
        status, updates, record = render(
            ctx,
            body,
            spec,
            kwargs[TARGETS],
            problem=body.status.get("problem"),
            suspect=body.status.get("suspectedCause"),
        )
        _apply(ctx, body, patch, status, updates)
        name = f"{body.metadata.get('namespace')}/{body.metadata.get('name')}"
        await _commit(ctx, record, f"Incident {name}: SLA target missed")

    forget_on_delete(INCIDENT, registry)
