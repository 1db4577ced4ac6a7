"""Incident use cases: priority, lifecycle and timeline, SLA timers, problems and suspected
causes, and the incident's and problem's CMDB records.

People drive an incident through its spec (state, assignee, resolution); the service records
when things happened, computes due times from the service's ServiceLevel, flags breaches, finds
the problem it recurs under and the change suspected of causing it, and commits the records.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from opsledger.domain.conditions import READY
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
from opsledger.domain.outcome import Outcome
from opsledger.domain.priority import matrix_with, priority
from opsledger.domain.records import record_path, to_yaml
from opsledger.domain.times import parse_time, stamp
from opsledger.domain.views import CHANGE_PLANS, FACTS, RELATIONS, TARGETS
from opsledger.models import CONFIGURATION_ITEM, INCIDENT
from opsledger.models.common import ConditionStatus
from opsledger.models.incident import IncidentSpec, IncidentState
from opsledger.models.records import IncidentRecord, ProblemRecord, RecordMetadata
from opsledger.services.context import Context
from opsledger.services.errors import RetryLaterError
from opsledger.services.records import write_record

SLA_BREACHED = "SLABreached"


def lifecycle_from(body: Mapping[str, Any]) -> Lifecycle:
    """The lifecycle recorded in status (a new one for a new incident)."""
    status = body.get("status") or {}
    opened = parse_time(status.get("openedAt")) or parse_time(body["metadata"]["creationTimestamp"])
    assert opened is not None
    return Lifecycle(
        state=IncidentState(status.get("state") or IncidentState.NEW),
        opened_at=opened,
        acknowledged_at=parse_time(status.get("acknowledgedAt")),
        resolved_at=parse_time(status.get("resolvedAt")),
        assignee=status.get("assignee"),
        priority=status.get("priority"),
        timeline=[{**e, "at": parse_time(e.get("at"))} for e in status.get("timeline") or []],
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
        resolved_at=parse_time(status.get("resolvedAt")),
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
            if e[4] == "Completed" and (finished := parse_time(e[5])) is not None
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
) -> tuple[Outcome, IncidentRecord]:
    """Status fields, conditions and the CMDB record for the incident as it is now."""
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
        "openedAt": stamp(life.opened_at),
        "acknowledgedAt": stamp(life.acknowledged_at),
        "resolvedAt": stamp(life.resolved_at),
        "timeToAcknowledge": format_duration(life.acknowledged_at - life.opened_at)
        if life.acknowledged_at
        else None,
        "timeToResolve": format_duration(life.resolved_at - life.opened_at)
        if life.resolved_at
        else None,
        "timeline": [{**e, "at": stamp(e["at"])} for e in life.timeline],
        # Links are sticky, so absent ones are not written: another incident's handler may be
        # linking this one to a problem at this very moment.
        **({"problem": problem} if problem else {}),
        **({"suspectedCause": suspect} if suspect else {}),
    }
    outcome = Outcome(status=status)
    outcome.condition(
        READY,
        ConditionStatus.TRUE,
        "Accepted",
        f"{prio} ({spec.impact} impact × {spec.urgency} urgency)",
    )
    if targets is None:
        status["sla"] = None
        outcome.condition(
            SLA_BREACHED,
            ConditionStatus.UNKNOWN,
            "NoTargets",
            f"no ServiceLevel for service {spec.service!r} in {namespace} sets "
            f"incidentTargets for {prio}",
        )
    else:
        due = sla(life, targets, now)
        status["sla"] = {
            "respondBy": stamp(due.respond_by),
            "resolveBy": stamp(due.resolve_by),
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
            outcome.condition(
                SLA_BREACHED,
                ConditionStatus.TRUE,
                "Breached",
                f"{' and '.join(missed)} target missed (respond by "
                f"{status['sla']['respondBy']}, resolve by "
                f"{status['sla']['resolveBy']})",
            )
        else:
            outcome.condition(
                SLA_BREACHED,
                ConditionStatus.FALSE,
                "WithinTargets",
                f"respond by {status['sla']['respondBy']}, resolve by {status['sla']['resolveBy']}",
            )
        status["nextDeadline"] = stamp(next_deadline(life, due))
    record = IncidentRecord.model_validate(
        {
            "metadata": RecordMetadata(
                cluster=ctx.settings.cluster, namespace=namespace, name=body["metadata"]["name"]
            ),
            # free text from people and alerts: the same redactor as every record
            "spec": ctx.redactor.mapping(
                {
                    k: ctx.redactor.text(v) if isinstance(v, str) else v
                    for k, v in spec.model_dump(mode="json", by_alias=True).items()
                }
            ),
            **ctx.redactor.mapping(
                {k: v for k, v in status.items() if k not in ("assignee", "nextDeadline")}
            ),
        }
    )
    return outcome, record


# What to commit: "incident" or "problem" (the records' folder, in the singular), the record,
# and the commit message.
ToCommit = tuple[str, IncidentRecord | ProblemRecord, str]


async def _commit(ctx: Context, records: list[ToCommit]) -> RetryLaterError | None:
    """Commit the records in order, up to the first the CMDB does not take: then the error to
    retry on ("<what> record not committed yet: ..."); None once all are in."""
    for what, record, reason in records:
        meta = record.metadata
        path = record_path(meta.cluster, meta.namespace, f"{what}s", meta.name)
        written = await write_record(ctx, path, to_yaml(record), reason)
        if written.error is not None:
            error = RetryLaterError(
                f"{what} record not committed yet: {written.error}",
                delay=ctx.settings.cmdb_retry_interval,
            )
            error.__cause__ = written.error
            return error
    return None


def _name(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return f"{meta.get('namespace')}/{meta.get('name')}"


async def _problem(
    ctx: Context, body: Mapping[str, Any], problem: Problem, outcome: Outcome
) -> ToCommit:
    """The problem's record to commit; link the other incidents and the item when it is new."""
    meta, status = body["metadata"], body.get("status") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    if status.get("problem") != problem.name:
        count = len(problem.incidents)
        outcome.event(
            "Warning",
            "RecurringIncident",
            f"{count} incidents on {problem.subject_kind} {problem.subject}: "
            f"problem {problem.name}",
        )
        if ctx.kube is not None:
            await asyncio.to_thread(_link, ctx, namespace, name, problem)
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
    reason = (
        f"Problem {namespace}/{problem.name}: {len(problem.incidents)} incidents on "
        f"{problem.subject} ({problem.state})"
    )
    return "problem", record, reason


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


async def reconcile(
    ctx: Context, body: Mapping[str, Any], spec: IncidentSpec, indexes: Mapping[str, Any]
) -> tuple[Outcome, Exception | None]:
    """Everything that follows from the incident's spec: status, links, records.

    Returns what to report even when a record could not be committed (then with the error the
    handler retries on)."""
    status = body.get("status") or {}
    problem, suspect = correlate(ctx, body, spec, indexes)
    outcome, record = render(
        ctx,
        body,
        spec,
        indexes[TARGETS],
        problem=problem.name if problem else status.get("problem"),
        suspect=suspect,
    )
    if suspect and suspect != status.get("suspectedCause"):
        outcome.event(
            "Warning",
            "SuspectedCause",
            f"Change {suspect} completed on these items or what they depend on "
            f"shortly before this incident opened",
        )
    records = [await _problem(ctx, body, problem, outcome)] if problem is not None else []
    reason = f"Incident {_name(body)}: {record.state} ({record.priority})"
    return outcome, await _commit(ctx, [*records, ("incident", record, reason)])


async def tick(
    ctx: Context, body: Mapping[str, Any], indexes: Mapping[str, Any]
) -> tuple[Outcome | None, Exception | None]:
    """Flag breaches as deadlines pass (nothing else changes the incident then); None while
    no deadline has passed."""
    status = body.get("status") or {}
    deadline = parse_time(status.get("nextDeadline"))
    if deadline is None or ctx.clock() <= deadline:
        return None, None
    try:
        spec = IncidentSpec.model_validate(dict(body.get("spec") or {}))
    except ValueError:
        return None, None
    outcome, record = render(
        ctx,
        body,
        spec,
        indexes[TARGETS],
        problem=status.get("problem"),
        suspect=status.get("suspectedCause"),
    )
    reason = f"Incident {_name(body)}: SLA target missed"
    return outcome, await _commit(ctx, [("incident", record, reason)])
