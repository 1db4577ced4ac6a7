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

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from opsledger.adapters.forge import ForgeError
from opsledger.adapters.gitcmdb import CMDBError
from opsledger.adapters.kube import Kube
from opsledger.adapters.prometheus import Prometheus, PrometheusUnavailableError
from opsledger.domain import changes
from opsledger.domain.changes import Health, RecordVersion, Verdict
from opsledger.domain.conditions import READY, find, parse_conditions, set_condition
from opsledger.domain.durations import go_duration
from opsledger.domain.impact import ImpactGraph
from opsledger.domain.records import record_path, to_yaml
from opsledger.domain.windows import decide, rfc3339
from opsledger.handlers.common import (
    CHANGE_PLANS,
    Context,
    context,
    forget_on_delete,
    validated_spec,
)
from opsledger.handlers.configitem import RELATIONS
from opsledger.models import CHANGE
from opsledger.models.change import ChangePhase, ChangeSpec, ChangeType, HealthCheck
from opsledger.models.common import ConditionStatus
from opsledger.models.records import ChangeRecord, RecordMetadata
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.models.settings import Settings

APPROVED = "Approved"
WINDOW_OPEN = "WindowOpen"
HEALTH_GATE = "HealthGate"
CMDB_SYNCED = "CMDBSynced"
STEP_ANNOTATION = "opsledger.io/change-step"  # "<change uid>/<step index>" on each patched target
SERVICE_LEVELS = "change_service_levels"
PLANS = CHANGE_PLANS
CRITICALITY = "change_item_criticality"  # "namespace/name" → the item's criticality
CONFLICT = "Conflict"
QUIET_REASONS = frozenset({"AwaitingApproval", "OutsideWindow"})  # waiting, not wrong
UNHAPPY = frozenset(
    {ChangePhase.REJECTED, ChangePhase.FAILED, ChangePhase.ROLLED_BACK}
)  # (namespace, service) → the ServiceLevel's spec, status


@dataclass
class Step:
    """What one tick decided: the status patch, Events to post."""

    body: kopf.Body
    now: datetime
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.blocked_by: list[str] = []  # conflicting changes in progress now
        self.affected: list[str] = []  # targets and what depends on them
        self.unknown_targets: list[str] = []  # targets no ConfigurationItem is known for
        self._conditions = parse_conditions(self.body.status.get("conditions"))
        self.phase = _phase(self.body.status.get("phase"))
        self.transitions = list(self.body.status.get("transitions") or [])

    def enter(self, phase: ChangePhase, reason: str, *, warning: bool = False) -> None:
        self.phase = phase
        self.status["phase"] = phase.value
        self.transitions.append({"phase": phase.value, "at": rfc3339(self.now), "reason": reason})
        self.status["transitions"] = self.transitions
        self.events.append(("Warning" if warning else "Normal", phase.value, reason))

    def condition(self, type_: str, value: ConditionStatus, reason: str, message: str) -> None:
        before = find(self._conditions, type_)
        self._conditions = set_condition(
            self._conditions,
            type=type_,
            status=value,
            reason=reason,
            message=message,
            now=self.now,
            generation=self.body.metadata.get("generation"),
        )
        self.status["conditions"] = [c.to_wire() for c in self._conditions]
        changed = before is None or before.status != value or before.reason != reason
        # Conflict is bad when True; the others are bad when not True.
        bad = (value == ConditionStatus.TRUE) == (type_ == CONFLICT)
        if changed and type_ != READY and bad:
            kind = "Normal" if reason in QUIET_REASONS else "Warning"
            self.events.append((kind, reason, message))

    def synced(self) -> bool:
        found = find(self._conditions, CMDB_SYNCED)
        return found is not None and found.status == ConditionStatus.TRUE

    def merged_status(self) -> dict[str, Any]:
        return {**dict(self.body.status), **self.status}


def _phase(value: Any) -> ChangePhase | None:
    try:
        return ChangePhase(value) if value else None
    except ValueError:
        return None


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
        await _seek_approval(ctx, step, spec, level, wanted=wanted, approval=approval)
    if step.phase == ChangePhase.APPROVED:
        step.enter(ChangePhase.SCHEDULED, "approved: waiting for an eligible window and health")
    if step.phase == ChangePhase.SCHEDULED:
        await _try_start(ctx, step, spec, level)
        return  # the plan runs from the next tick, once InProgress and the prior state are stored
    if step.phase == ChangePhase.IN_PROGRESS:
        await _carry_out(ctx, step, spec)
    if step.phase == ChangePhase.VERIFYING:
        await _verify(ctx, step, spec, level)


# -- conflicts and risk ------------------------------------------------------------------


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _planned(namespace: str, entry: Sequence[Any]) -> changes.Planned:
    name, targets, start, end, phase = entry[:5]
    return changes.Planned(
        name=str(name),
        targets=frozenset(f"{namespace}/{t}" for t in targets),
        start=_moment(start),
        end=_moment(end),
        active=_phase(phase) in changes.ACTIVE,
    )


def _burn_rate(level: Mapping[str, Any] | None) -> float | None:
    """The fastest 1h burn rate of the service's objectives, as the ServiceLevel last measured."""
    rates = [
        float(rate)
        for objective in ((level or {}).get("status") or {}).get("objectives") or []
        for window, rate in (objective.get("burnRates") or {}).items()
        if window == "1h" and rate is not None
    ]
    return max(rates) if rates else None


def _judge(
    me: changes.Planned,
    entries: Sequence[Sequence[Any]],
    namespace: str,
    *,
    graph: ImpactGraph,
    criticality: Mapping[str, Sequence[str]],
    level: Mapping[str, Any] | None,
    has_plan: bool,
    now: datetime,
) -> tuple[list[changes.Planned], changes.Risk]:
    """Conflicts and risk of `me` among the namespace's changes (index entries)."""
    open_ = [_planned(namespace, e) for e in entries if _phase(e[4]) not in changes.FINAL]
    found = changes.conflicts(me, open_, graph)
    failures = [
        (frozenset(f"{namespace}/{t}" for t in e[1]), ended)
        for e in entries
        if _phase(e[4]) in (ChangePhase.FAILED, ChangePhase.ROLLED_BACK)
        if e[0] != me.name and (ended := _moment(e[5])) is not None
    ]
    dependents = set().union(*(graph.dependents(t) for t in me.targets)) - me.targets
    risk = changes.assess_risk(
        criticalities=[v for t in me.targets for v in criticality.get(t, ())],
        dependents=len(dependents),
        recent_failures=changes.recent_failures(failures, me.targets, now),
        burn_rate=_burn_rate(level),
        has_plan=has_plan,
    )
    return found, risk


def _me(
    namespace: str, name: str, spec: ChangeSpec, window: Mapping[str, Any], active: bool
) -> changes.Planned:
    schedule = spec.schedule
    return changes.Planned(
        name=name,
        targets=frozenset(f"{namespace}/{t}" for t in spec.targets),
        start=_moment(window.get("start")) or (schedule.not_before if schedule else None),
        end=_moment(window.get("end")) or (schedule.not_after if schedule else None),
        active=active,
    )


def assess(
    step: Step, spec: ChangeSpec, level: Mapping[str, Any] | None, indexes: Mapping[str, Any]
) -> None:
    """Conflicts with other open changes, and the risk, from the operator's indexes."""
    meta = step.body.metadata
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    relations = indexes.get(RELATIONS) or {}
    graph = ImpactGraph({k: [p for v in store for p in v] for k, store in relations.items()})
    me = _me(
        namespace,
        name,
        spec,
        step.merged_status().get("window") or {},
        active=step.phase in changes.ACTIVE,
    )
    found, risk = _judge(
        me,
        list((indexes.get(PLANS) or {}).get(namespace, ())),
        namespace,
        graph=graph,
        criticality=indexes.get(CRITICALITY) or {},
        level=level,
        has_plan=bool(spec.plan),
        now=step.now,
    )
    step.status["conflicts"] = [c.name for c in found]
    if found:
        names = ", ".join(
            f"{c.name} ({'in progress' if c.active else 'overlapping'})" for c in found
        )
        step.condition(
            CONFLICT,
            ConditionStatus.TRUE,
            "Overlapping",
            f"overlaps in time on the same or dependent items with: {names}; a change waits "
            "while another one on its items is in progress",
        )
    else:
        step.condition(CONFLICT, ConditionStatus.FALSE, "NoConflict", "no overlapping change")
    step.blocked_by = [c.name for c in found if c.active]
    known = indexes.get(CRITICALITY) or {}
    step.unknown_targets = [t for t in spec.targets if f"{namespace}/{t}" not in known]
    dependents = set().union(*(graph.dependents(t) for t in me.targets)) - me.targets
    step.affected = sorted(t.removeprefix(f"{namespace}/") for t in {*me.targets, *dependents})
    step.status.update(
        {"risk": risk.level, "riskScore": risk.score, "riskFactors": list(risk.factors)}
    )


# -- opsledger change plan ---------------------------------------------------------------


def _entry(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    """A Change object as the PLANS index holds it."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    window, schedule = status.get("window") or {}, spec.get("schedule") or {}
    return (
        (obj.get("metadata") or {}).get("name"),
        tuple(spec.get("targets") or ()),
        window.get("start") or schedule.get("notBefore"),
        window.get("end") or schedule.get("notAfter"),
        status.get("phase"),
        (status.get("execution") or {}).get("finishedAt"),
    )


async def plan(
    kube: Kube,
    prometheus: Prometheus | None,
    *,
    namespace: str,
    name: str,
    spec: ChangeSpec,
    now: datetime,
) -> dict[str, Any]:
    """What the operator would decide about this change now, without applying anything:
    windows, conflicts, health and risk, and the blockers among them (for a pull-request check).
    """
    items = await asyncio.to_thread(kube.list_namespaced_custom, "configurationitems", namespace)
    levels = await asyncio.to_thread(kube.list_namespaced_custom, "servicelevels", namespace)
    others = await asyncio.to_thread(kube.list_namespaced_custom, "changes", namespace)
    blockers = []
    names = {str(i["metadata"]["name"]) for i in items}
    missing = [t for t in spec.targets if t not in names]
    if missing:
        blockers.append(f"targets that are no ConfigurationItem here: {', '.join(missing)}")
    level = next(
        (lv for lv in levels if (lv.get("spec") or {}).get("service") == spec.service), None
    )
    report: dict[str, Any] = {"change": f"{namespace}/{name}", "type": str(spec.type)}
    window: dict[str, Any] = {}
    if level is None:
        blockers.append(f"no ServiceLevel with spec.service={spec.service!r} in {namespace}")
        report["window"] = None
    else:
        sl = ServiceLevelSpec.model_validate(level.get("spec") or {})
        schedule = spec.schedule
        decision = decide(
            now,
            windows=sl.maintenance_windows,
            freezes=sl.freezes,
            not_before=schedule.not_before if schedule else None,
            not_after=schedule.not_after if schedule else None,
            emergency=spec.type == ChangeType.EMERGENCY,
        )
        report["window"] = decision.to_json()
        if decision.next is None:
            blockers.append(f"no eligible window: {decision.reason}")
        else:
            window = {"start": rfc3339(decision.next.start), "end": rfc3339(decision.next.end)}
    relations = {
        f"{namespace}/{i['metadata']['name']}": [
            (r["type"], r["target"])
            for r in [
                *((i.get("spec") or {}).get("relationships") or []),
                *((i.get("status") or {}).get("relationships") or []),
            ]
            if "type" in r and "target" in r
        ]
        for i in items
    }
    criticality = {
        f"{namespace}/{i['metadata']['name']}": [str((i.get("spec") or {}).get("criticality"))]
        for i in items
    }
    me = _me(namespace, name, spec, window, active=False)
    found, risk = _judge(
        me,
        [_entry(o) for o in others],
        namespace,
        graph=ImpactGraph(relations),
        criticality=criticality,
        level=level,
        has_plan=bool(spec.plan),
        now=now,
    )
    report["conflicts"] = [
        {"change": c.name, "inProgress": c.active, "targets": sorted(c.targets)} for c in found
    ]
    blockers += [f"change {c.name} is in progress on the same items" for c in found if c.active]
    report["risk"] = {"level": risk.level, "score": risk.score, "factors": list(risk.factors)}
    pre = spec.checks.pre if spec.checks else []
    alerts = spec.checks.no_critical_alerts if spec.checks else True
    if prometheus is None:
        report["health"] = {"status": "NotChecked", "reasons": ["no Prometheus given"]}
    else:
        verdict = await gate(prometheus, pre, spec.service if alerts else None)
        if spec.type == ChangeType.NORMAL and level is not None:
            _budget(level, ServiceLevelSpec.model_validate(level.get("spec") or {}), verdict)
        report["health"] = {"status": verdict.health.value, "reasons": verdict.reasons}
        if verdict.health is not Health.HEALTHY:
            blockers.append(f"health is {verdict.health.value.lower()}: {verdict.message}")
    report["blockers"] = blockers
    report["ok"] = not blockers
    return report


# -- approval ----------------------------------------------------------------------------


async def _open_pull_request(
    ctx: Context, step: Step, approval: dict[str, Any], message: str
) -> None:
    """Open (or update) the proposal's pull request where a forge is configured; say where to
    approve either way."""
    assert ctx.cmdb is not None
    branch = str(approval["proposalBranch"])
    where = f"branch {branch} of the CMDB"
    if ctx.forge is not None:
        title, _, body = message.partition("\n")
        try:
            pull = await asyncio.to_thread(
                ctx.forge.open, branch, ctx.cmdb.branch, title, body.strip() + "\n"
            )
        except ForgeError as exc:
            step.condition(
                APPROVED,
                ConditionStatus.FALSE,
                "ForgeUnavailable",
                f"proposed on {where}, but the pull request could not be opened: {exc}; retrying",
            )
            return
        approval.update({"pullRequest": pull.url, "pullRequestNumber": pull.number})
        step.status["approval"] = approval
        where = f"pull request #{pull.number} ({pull.url})"
    step.condition(
        APPROVED,
        ConditionStatus.FALSE,
        "AwaitingApproval",
        f"proposed in {where}; merge it into {ctx.cmdb.branch} to approve",
    )


async def _seek_approval(
    ctx: Context,
    step: Step,
    spec: ChangeSpec,
    level: Mapping[str, Any] | None,
    *,
    wanted: str,
    approval: dict[str, Any],
) -> None:
    meta = step.body.metadata
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    if spec.type == ChangeType.EMERGENCY:
        step.status["approval"] = {
            "approver": "emergency change (post-implementation review required)",
            "approvedAt": rfc3339(step.now),
            "specHash": wanted,
        }
        step.status["reviewRequired"] = True
        step.condition(APPROVED, ConditionStatus.TRUE, "Emergency", "emergency: review afterwards")
        step.enter(ChangePhase.APPROVED, "emergency change: starts now, reviewed afterwards")
        return
    if ctx.cmdb is None:
        step.condition(
            APPROVED,
            ConditionStatus.FALSE,
            "NoCMDB",
            "no CMDB remote is configured (OPSLEDGER_CMDB_URL): approvals are read from it, so "
            "only emergency changes can run",
        )
        return
    cmdb = ctx.cmdb
    try:
        if spec.type == ChangeType.STANDARD:
            await _standard_approval(ctx, step, spec, wanted)
            return
        branch = changes.proposal_branch(ctx.settings.cluster, namespace, name)
        path = record_path(ctx.settings.cluster, namespace, "changes", name)
        if approval.get("specHash") != wanted or not approval.get("proposalCommit"):
            if not _ready_to_propose(step, spec, level):
                return
            content = to_yaml(_record(ctx, step, spec, wanted, proposal=True))
            message = _proposal_message(ctx, step, spec, level)
            commit = await asyncio.to_thread(cmdb.propose, branch, path, content, message)
            approval = {
                "proposalBranch": branch,
                "proposalCommit": commit,
                "specHash": wanted,
                # Kopf writes status as a merge patch: a stale approval's keys must be nulled.
                "commit": None,
                "approver": None,
                "approvedAt": None,
                "reviewers": None,
                "pullRequest": None,
                "pullRequestNumber": None,
            }
            step.status["approval"] = approval
            await _open_pull_request(ctx, step, approval, message)
            return
        if ctx.forge is not None and not approval.get("pullRequestNumber"):
            message = _proposal_message(ctx, step, spec, level)
            await _open_pull_request(ctx, step, approval, message)
            return
        await asyncio.to_thread(cmdb.refresh)
        raw = await asyncio.to_thread(cmdb.history, path)
        history = [
            RecordVersion(sha, who, datetime.fromisoformat(when), content)
            for sha, who, when, content in raw
        ]
        found = changes.find_approval(history, wanted)
        pull = None
        if ctx.forge is not None and approval.get("pullRequestNumber"):
            pull = await asyncio.to_thread(ctx.forge.get, int(approval["pullRequestNumber"]))
        if found is not None:
            reviewers = list(pull.approvers) if pull else []
            step.status["approval"] = {
                **approval,
                "commit": found.sha,
                "approver": found.committer,
                "approvedAt": rfc3339(found.committed_at),
                "reviewers": reviewers or None,
            }
            by = found.committer + (f", reviewed by {', '.join(reviewers)}" if reviewers else "")
            step.condition(APPROVED, ConditionStatus.TRUE, "Merged", f"approved by {by}")
            step.enter(
                ChangePhase.APPROVED, f"approved by {by}: {branch} merged in {found.sha[:12]}"
            )
        elif pull is not None and not pull.open and not pull.merged:
            step.condition(
                APPROVED,
                ConditionStatus.FALSE,
                "PullRequestClosed",
                f"pull request #{pull.number} was closed without merging",
            )
            step.enter(
                ChangePhase.REJECTED,
                f"pull request #{pull.number} ({pull.url}) was closed without merging",
                warning=True,
            )
        elif not await asyncio.to_thread(cmdb.branch_exists, branch):
            step.condition(
                APPROVED,
                ConditionStatus.FALSE,
                "ProposalDeleted",
                f"branch {branch} was deleted without being merged",
            )
            step.enter(
                ChangePhase.REJECTED,
                f"the proposal branch {branch} was deleted without being merged",
                warning=True,
            )
    except ForgeError as exc:
        step.condition(APPROVED, ConditionStatus.UNKNOWN, "ForgeUnavailable", f"{exc}; retrying")
    except CMDBError as exc:
        step.condition(APPROVED, ConditionStatus.UNKNOWN, "CMDBUnavailable", f"{exc}; retrying")


def _ready_to_propose(step: Step, spec: ChangeSpec, level: Mapping[str, Any] | None) -> bool:
    """A proposal tells reviewers the window, the risk and the affected items: it waits until the
    service's ServiceLevel and the target items are known, rather than tell them wrong."""
    namespace = step.body.metadata.get("namespace")
    if level is None:
        step.condition(
            APPROVED,
            ConditionStatus.FALSE,
            "ServiceLevelNotFound",
            f"not proposed yet: no ServiceLevel with spec.service={spec.service!r} in {namespace} "
            "(its windows and budget go into the proposal); create it or fix spec.service",
        )
        return False
    if step.unknown_targets:
        step.condition(
            APPROVED,
            ConditionStatus.FALSE,
            "TargetsNotFound",
            f"not proposed yet: no ConfigurationItem {', '.join(step.unknown_targets)} in "
            f"{namespace}; create them or fix spec.targets",
        )
        return False
    return True


async def _standard_approval(ctx: Context, step: Step, spec: ChangeSpec, wanted: str) -> None:
    assert ctx.cmdb is not None
    assert spec.template is not None
    path = changes.template_path(spec.template)
    await asyncio.to_thread(ctx.cmdb.refresh)
    versions = await asyncio.to_thread(ctx.cmdb.history, path)
    if not versions or versions[-1][3] is None:
        step.condition(
            APPROVED,
            ConditionStatus.FALSE,
            "TemplateNotFound",
            f"standard-change template {path} is not on {ctx.cmdb.branch}; add it there, or make "
            "this a normal change",
        )
        return
    sha, committer, _, _ = versions[-1]
    step.status["approval"] = {
        "approver": f"standard-change template {spec.template} (by {committer})",
        "commit": sha,
        "approvedAt": rfc3339(step.now),
        "specHash": wanted,
    }
    step.condition(APPROVED, ConditionStatus.TRUE, "PreApproved", f"template {path}")
    step.enter(ChangePhase.APPROVED, f"pre-approved by standard-change template {spec.template}")


def _proposal_message(
    ctx: Context, step: Step, spec: ChangeSpec, level: Mapping[str, Any] | None
) -> str:
    """The proposal commit's message; a forge's pull request takes its title and body from it."""
    status = step.merged_status()
    meta = step.body.metadata
    namespace, name = meta.get("namespace"), meta.get("name")
    lines = [
        f"change({ctx.settings.cluster}/{namespace}/{name}): {spec.summary}"[:120],
        "",
        f"- **Type:** {spec.type}",
        f"- **Service:** {spec.service}",
        f"- **Targets:** {', '.join(spec.targets) or 'none'}",
        f"- **Affected items:** {', '.join(step.affected) or 'none'}",
    ]
    window = _next_window(step, spec, level)
    lines.append(f"- **Window:** {window}")
    if status.get("risk"):
        factors = ", ".join(status.get("riskFactors") or []) or "no factors"
        lines.append(f"- **Risk:** {status['risk']} (score {status.get('riskScore')}: {factors})")
    if status.get("conflicts"):
        lines.append(f"- **Conflicts:** {', '.join(status['conflicts'])}")
    lines.append("")
    if spec.plan:
        lines.append("Plan:")
        for p in spec.plan:
            lines.append(f"1. {p.patch_type} patch of {p.target.kind} {p.target.name}:")
            lines.append(f"   `{json.dumps(p.patch, sort_keys=True)[:500]}`")
    else:
        lines.append("No plan: a permit for manual work while the change is in progress.")
    if spec.checks and (spec.checks.pre or spec.checks.post):
        lines.append("")
        lines.append("Health checks:")
        for when, checks in (("pre", spec.checks.pre), ("post", spec.checks.post)):
            for c in checks:
                bound = f"below {c.below:g}" if c.below is not None else f"above {c.above:g}"
                lines.append(f"- {when}: {c.name} `{c.query}` {bound}")
    lines += ["", "Merge this proposal to approve the change; close or delete it to reject it."]
    return "\n".join(lines) + "\n"


def _next_window(step: Step, spec: ChangeSpec, level: Mapping[str, Any] | None) -> str:
    """The window the change would run in, as text for reviewers."""
    if level is None:
        return f"unknown: no ServiceLevel for service {spec.service}"
    try:
        sl = ServiceLevelSpec.model_validate(level.get("spec") or {})
    except ValidationError:
        return "unknown: the service's ServiceLevel is invalid"
    schedule = spec.schedule
    decision = decide(
        step.now,
        windows=sl.maintenance_windows,
        freezes=sl.freezes,
        not_before=schedule.not_before if schedule else None,
        not_after=schedule.not_after if schedule else None,
        emergency=spec.type == ChangeType.EMERGENCY,
    )
    if decision.next is None:
        return f"none: {decision.reason}"
    return f"{rfc3339(decision.next.start)} to {rfc3339(decision.next.end)}"


# -- starting ----------------------------------------------------------------------------


async def _try_start(
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
    decision = decide(
        step.now,
        windows=sl.maintenance_windows,
        freezes=sl.freezes,
        not_before=schedule.not_before if schedule else None,
        not_after=schedule.not_after if schedule else None,
        emergency=spec.type == ChangeType.EMERGENCY,
    )
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
        _budget(level, sl, verdict)
    if not _report_health(step, verdict, "pre-checks"):
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


def _budget(level: Mapping[str, Any], sl: ServiceLevelSpec, verdict: Verdict) -> None:
    """An exhausted error budget holds normal changes; an unmeasured one is unknown health."""
    policy = sl.error_budget_policy
    if not sl.objectives or (policy is not None and not policy.block_normal_changes):
        return
    conditions = parse_conditions((level.get("status") or {}).get("conditions"))
    measured = find(conditions, "Measured")
    exhausted = find(conditions, "BudgetExhausted")
    if measured is None or measured.status != ConditionStatus.TRUE:
        verdict.unknown(
            "the service's error budget is not measured yet"
            + (f" ({measured.message})" if measured else "")
        )
    elif exhausted is not None and exhausted.status == ConditionStatus.TRUE:
        verdict.fail(f"error budget exhausted: {exhausted.message}")


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


def _report_health(step: Step, verdict: Verdict, what: str) -> bool:
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


async def _carry_out(ctx: Context, step: Step, spec: ChangeSpec) -> None:
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


async def _verify(
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
        _report_health(step, verdict, "post-checks")
        return
    if verdict.health is Health.UNHEALTHY:
        _report_health(step, verdict, "post-checks")
        await _roll_back(ctx, step, spec, f"post-checks failed: {verdict.message}")
        return
    _report_health(step, verdict, "post-checks")
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


# -- the CMDB record ---------------------------------------------------------------------


def _record(
    ctx: Context, step: Step, spec: ChangeSpec, wanted: str | None, *, proposal: bool
) -> ChangeRecord:
    meta = step.body.metadata
    status = step.merged_status()
    redacted = ctx.redactor.mapping(spec.model_dump(mode="json", by_alias=True, exclude_none=True))
    return ChangeRecord.model_validate(
        {
            "metadata": RecordMetadata(
                cluster=ctx.settings.cluster,
                namespace=str(meta.get("namespace")),
                name=str(meta.get("name")),
            ),
            "spec": redacted,
            "specHash": wanted,
            "phase": ChangePhase.PENDING_APPROVAL if proposal else step.phase,
            # (None values only null stale keys in status' merge patch)
            "approval": None
            if proposal
            else {k: v for k, v in (status.get("approval") or {}).items() if v is not None},
            "window": status.get("window"),
            "risk": status.get("risk"),
            "affected": list(spec.targets),
            "incident": None if proposal else status.get("incident"),
            "transitions": [] if proposal else status.get("transitions") or [],
        }
    )


async def record(ctx: Context, step: Step, spec: ChangeSpec) -> None:
    """Write the change record to the protected branch once the change is past approval.

    While a change waits for approval only its proposal branch holds it: a record on the
    protected branch carrying the wanted hash is exactly what approves a change, so the operator
    never writes one itself. Later records carry the hash of the approved spec only.
    """
    if ctx.cmdb is None or step.phase in (None, ChangePhase.PENDING_APPROVAL):
        return
    approval = step.merged_status().get("approval") or {}
    approved_hash = approval.get("specHash") if approval.get("approvedAt") else None
    meta = step.body.metadata
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    path = record_path(ctx.settings.cluster, namespace, "changes", name)
    content = to_yaml(_record(ctx, step, spec, approved_hash, proposal=False))
    reason = f"change {namespace}/{name}: {step.phase.value if step.phase else ''}"
    try:
        commit = await ctx.cmdb.write(path, content, reason)
    except CMDBError as exc:
        step.condition(CMDB_SYNCED, ConditionStatus.FALSE, "CMDBUnavailable", f"{exc}; retrying")
        return
    previous = step.merged_status().get("cmdb") or {}
    if previous.get("commit") != commit.sha:
        step.status["cmdb"] = {"path": path, "commit": commit.sha, "syncedAt": rfc3339(step.now)}
    step.condition(CMDB_SYNCED, ConditionStatus.TRUE, "Synced", f"{path} at {commit.sha[:12]}")
