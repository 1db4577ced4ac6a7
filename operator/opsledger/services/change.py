"""The Change lifecycle use case: one tick takes a change as far as it can go.

One timer per Change calls `tick`, so a single writer owns its status and every phase entered is
persisted before the plan that follows it runs. Nothing a tick needs lives only in memory: the
proposal is in Git, the approval is read back from Git, the targets' prior state and the applied
plan steps are in status, and each applied step is stamped on its target, so a restart resumes
where it stopped and never applies a step twice.

The rules are `domain/change_lifecycle.transition`: this module finds out the facts it needs
(`services/change_approval.py`, `change_health.py`, `change_execution.py` ask the CMDB, the
forge, Prometheus and the API server), carries out the effects it asks for, and collects its
moves into the Outcome the handler applies.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsledger.domain import changes
from opsledger.domain.change_approval import approval_unavailable
from opsledger.domain.change_assessment import Assessment, assess, phase_of
from opsledger.domain.change_facts import Effect, Facts, Move, Need
from opsledger.domain.change_lifecycle import ready, transition
from opsledger.domain.conditions import CMDB_SYNCED, find, parse_conditions
from opsledger.domain.outcome import Outcome
from opsledger.domain.times import rfc3339
from opsledger.domain.views import (
    CHANGE_PLANS,
    CRITICALITY,
    ITEM_SERVICES,
    RELATIONS,
    SERVICE_LEVELS,
)
from opsledger.models.change import ChangePhase, ChangeSpec, ChangeType
from opsledger.models.common import ConditionStatus
from opsledger.services import (
    calendars,
    change_approval,
    change_execution,
    change_review,
    change_silences,
)
from opsledger.services.change_approval import UNAVAILABLE
from opsledger.services.change_health import measure_checks
from opsledger.services.context import Context

REASON_MAX = 1024  # a transition's reason, as the CRD and the record allow (an API error's
# text, which goes into it, has no bound)


@dataclass
class Tick:
    """One tick of one Change: the object as stored, and the Outcome decided so far."""

    metadata: Mapping[str, Any]
    stored: Mapping[str, Any]  # status as the API server holds it
    now: datetime
    outcome: Outcome = field(default_factory=Outcome)

    def __post_init__(self) -> None:
        self.phase: ChangePhase | None = phase_of(self.stored.get("phase"))
        self.transitions: list[dict[str, Any]] = list(self.stored.get("transitions") or [])

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("name"))

    @property
    def uid(self) -> str | None:
        uid = self.metadata.get("uid")
        return str(uid) if uid else None

    def status(self) -> dict[str, Any]:
        """Status as it will be once the outcome is applied (conditions aside)."""
        return {**self.stored, **self.outcome.status}

    def take(self, move: Move) -> None:
        """The move's status fields and conditions, and the phase it enters."""
        if move.at is not None:
            self.now = move.at
        self.outcome.status.update(move.status)
        self.outcome.conditions.extend(move.conditions)
        if move.phase is not None:
            self.phase = move.phase
            reason = move.reason if len(move.reason) <= REASON_MAX else move.reason[:1021] + "..."
            self.transitions.append(
                {"phase": move.phase.value, "at": rfc3339(self.now), "reason": reason}
            )
            self.outcome.status["phase"] = move.phase.value
            self.outcome.status["transitions"] = self.transitions
            self.outcome.event(
                "Warning" if move.warning else "Normal", move.phase.value, move.reason
            )

    def changed(self) -> bool:
        return bool(self.outcome.status or self.outcome.conditions)

    def synced(self) -> bool:
        """Whether the CMDB holds the change's record as of its last write."""
        updates = [c for c in self.outcome.conditions if c.type == CMDB_SYNCED]
        if updates:
            return updates[-1].status == ConditionStatus.TRUE
        found = find(parse_conditions(self.stored.get("conditions")), CMDB_SYNCED)
        return found is not None and found.status == ConditionStatus.TRUE


async def tick(
    ctx: Context, body: Mapping[str, Any], spec: ChangeSpec, indexes: Mapping[str, Any]
) -> Outcome:
    """Take the change in `body` as far as it can go now; what to write, as an Outcome.
    `indexes` are Kopf's (the handler's keyword arguments)."""
    state = Tick(body["metadata"], dict(body.get("status") or {}), ctx.clock())
    if spec.requester and state.stored.get("requester") != spec.requester.username:
        state.outcome.status["requester"] = spec.requester.username
    level = _level(ctx, indexes, state.namespace, spec, state.now)
    assessment = Assessment()
    if state.phase not in changes.FINAL:
        assessment = assess(
            namespace=state.namespace,
            name=state.name,
            spec=spec,
            window=state.stored.get("window") or {},
            active=state.phase in changes.ACTIVE,
            entries=list((indexes.get(CHANGE_PLANS) or {}).get(state.namespace, ())),
            relations=indexes.get(RELATIONS) or {},
            criticality=indexes.get(CRITICALITY) or {},
            level=level,
            now=state.now,
        )
        state.outcome.status.update(assessment.status)
        if assessment.condition is not None:
            state.outcome.conditions.append(assessment.condition)
    await advance(ctx, state, spec, level, assessment)
    await _silences(ctx, state, spec)  # after a restart too
    try:
        reviewed = await change_review.review(
            ctx,
            namespace=state.namespace,
            name=state.name,
            uid=state.uid,
            spec=spec,
            phase=state.phase,
            status=state.status(),
            now=state.now,
        )
    except tuple(UNAVAILABLE) as exc:  # the review is proposed on a later tick
        reviewed = Outcome()
        reviewed.condition("Reviewed", ConditionStatus.UNKNOWN, "CMDBUnavailable", str(exc))
    state.outcome.merge(reviewed)
    if state.changed() or not state.synced():
        written = await change_approval.record(
            ctx,
            namespace=state.namespace,
            name=state.name,
            uid=state.uid,
            spec=spec,
            phase=state.phase,
            status=state.status(),
            now=state.now,
        )
        state.outcome.merge(written)
    state.outcome.conditions.append(ready(state.phase, state.transitions))
    return state.outcome


async def _silences(ctx: Context, state: Tick, spec: ChangeSpec) -> None:
    """Alertmanager silences held while the change runs (services/change_silences.py)."""
    state.outcome.merge(
        await change_silences.keep(
            ctx,
            namespace=state.namespace,
            name=state.name,
            spec=spec,
            phase=state.phase,
            status=state.status(),
            now=state.now,
        )
    )


def _level(
    ctx: Context,
    indexes: Mapping[str, Any],
    namespace: str,
    spec: ChangeSpec,
    now: datetime,
) -> dict[str, Any] | None:
    """The change's ServiceLevel (spec and status), carrying the ServiceLevels of the other
    services its targets belong to (their freezes and blackouts hold it too) and the events of
    the shared calendars any of them names."""
    by_service = indexes.get(SERVICE_LEVELS) or {}
    services = indexes.get(ITEM_SERVICES) or {}

    def one(service: str) -> dict[str, Any] | None:
        found = list(by_service.get((namespace, service), ()))
        return dict(found[0]) if found else None

    level = one(spec.service)
    if level is None:
        return None
    others = {}
    for target in spec.targets:
        for service in services.get(f"{namespace}/{target}", ()):
            other = one(service) if service != spec.service else None
            if other is not None:
                others[service] = other
    names = [
        str(ref.get("name"))
        for lv in (level, *others.values())
        for ref in (lv.get("spec") or {}).get("calendars") or []
        if ref.get("name")
    ]
    return {
        **level,
        changes.OTHERS: others,
        changes.CALENDAR: calendars.holds(ctx, sorted(set(names)), now),
    }


async def advance(
    ctx: Context,
    state: Tick,
    spec: ChangeSpec,
    level: Mapping[str, Any] | None,
    assessment: Assessment,
) -> None:
    """Ask the lifecycle for moves, find out what they need and carry out their effects, until
    one says the tick is done."""
    facts = Facts(
        now=state.now,
        cluster=ctx.settings.cluster,
        namespace=state.namespace,
        name=state.name,
        spec=spec,
        wanted=changes.spec_hash(spec),
        phase=state.phase,
        uid=state.uid,
        level=level,
        blocked_by=assessment.blocked_by,
        unknown_targets=assessment.unknown_targets,
        protected_branch=ctx.cmdb.branch if ctx.cmdb is not None else None,
        forge=ctx.forge is not None,
    )
    facts = _as_of(facts, state)
    try:
        while True:
            move = transition(facts)
            if move.needs is not None:
                facts = await find_out(ctx, facts, move.needs)
                continue
            state.take(move)
            if move.phase is not None:  # silenced on entering InProgress, expired on ending
                await _silences(ctx, state, spec)
            facts = _as_of(facts, state)
            if move.effects:
                facts = await carry_out(ctx, state, facts, move, assessment)
            if move.done:
                return
    except tuple(UNAVAILABLE) as exc:  # asking for the approval: Unknown, tried again
        reason = next(r for kind, r in UNAVAILABLE.items() if isinstance(exc, kind))
        state.outcome.conditions.append(approval_unavailable(reason, str(exc)))


def _as_of(facts: Facts, state: Tick) -> Facts:
    """`facts` with the phase and the status fields the tick has moved to."""
    status = state.status()
    return dataclasses.replace(
        facts,
        phase=state.phase,
        approval=status.get("approval") or {},
        risk=status.get("risk"),
        execution=status.get("execution") or {},
        window=status.get("window") or {},
    )


async def _template(ctx: Context, facts: Facts) -> Facts:
    template = await change_approval.find_template(ctx, facts.spec, facts.namespace)
    return dataclasses.replace(facts, template=template)


async def _approval(ctx: Context, facts: Facts) -> Facts:
    return dataclasses.replace(facts, read_back=await change_approval.find_read_back(ctx, facts))


async def _branch(ctx: Context, facts: Facts) -> Facts:
    assert facts.read_back is not None
    read_back = facts.read_back
    exists = await change_approval.find_branch(ctx, facts)
    if not exists:
        # The merge may have come between reading the pull request (open) and the branch (a
        # squash merge deletes it): read the merge and the pull request again, after the branch,
        # before calling it a deletion.
        read_back = await change_approval.find_read_back(ctx, facts)
    return dataclasses.replace(
        facts, read_back=dataclasses.replace(read_back, branch_exists=exists)
    )


async def _pre_checks(ctx: Context, facts: Facts) -> Facts:
    verdict = await measure_checks(ctx.prometheus, facts.spec, facts.namespace, pre=True)
    return dataclasses.replace(facts, pre_checks=verdict)


async def _targets(ctx: Context, facts: Facts) -> Facts:
    found = await asyncio.to_thread(
        change_execution.target_statuses, ctx, facts.spec, facts.namespace
    )
    return dataclasses.replace(facts, targets=found)


async def _prior(ctx: Context, facts: Facts) -> Facts:
    prior = await asyncio.to_thread(change_execution.capture, ctx, facts.spec, facts.namespace)
    # It starts now, once the gates passed (they take a moment).
    return dataclasses.replace(facts, prior=prior, started_at=ctx.clock())


async def _post_checks(ctx: Context, facts: Facts) -> Facts:
    verdict = await measure_checks(ctx.prometheus, facts.spec, facts.namespace, pre=False)
    return dataclasses.replace(facts, post_checks=verdict)


# Need → how the service finds it out: `facts` with the answer.
FINDERS: Mapping[Need, Callable[[Context, Facts], Awaitable[Facts]]] = {
    Need.TEMPLATE: _template,
    Need.APPROVAL: _approval,
    Need.BRANCH: _branch,
    Need.PRE_CHECKS: _pre_checks,
    Need.TARGETS: _targets,
    Need.PRIOR: _prior,
    Need.POST_CHECKS: _post_checks,
}


async def find_out(ctx: Context, facts: Facts, need: Need) -> Facts:
    """`facts` with what `need` names found out."""
    return await FINDERS[need](ctx, facts)


async def carry_out(
    ctx: Context, state: Tick, facts: Facts, move: Move, assessment: Assessment
) -> Facts:
    """Do what `move` asks; `facts` with what that reported back."""
    spec = facts.spec
    if Effect.PROPOSE in move.effects or Effect.OPEN_PULL_REQUEST in move.effects:
        proposed = await change_approval.propose(
            ctx, facts, move.effects, status=state.status(), affected=assessment.affected
        )
        state.outcome.merge(proposed)
        return _as_of(facts, state)
    if Effect.APPLY_PLAN in move.effects:
        window = None
        if spec.type != ChangeType.EMERGENCY and facts.level is not None:
            # the calendar only: schedule.notAfter is about starting, not about finishing
            window = changes.window_for(
                state.now, spec.model_copy(update={"schedule": None}), facts.level
            )
        result = await asyncio.to_thread(
            change_execution.apply_plan,
            ctx,
            spec,
            facts.namespace,
            str(state.uid),
            facts.execution,
            window=window,
        )
        return dataclasses.replace(facts, plan=result)
    # The change's own silences go first: its failure pages people.
    held = list(state.status().get("silences") or [])
    if held and await change_silences.expired_first(ctx, held, f"{facts.namespace}/{facts.name}"):
        state.outcome.status["silences"] = None
    rolled_back = await asyncio.to_thread(
        lambda: change_execution.roll_back(
            ctx,
            spec,
            namespace=facts.namespace,
            name=facts.name,
            execution=facts.execution,
            why=move.why,
        )
    )
    return dataclasses.replace(facts, rollback=rolled_back)
