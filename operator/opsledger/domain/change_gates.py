"""The gates an approved Change passes before it starts, as a chain of small named policies.

Each policy looks at `StartFacts` and returns `GO`, a `Refusal` (the condition reason and message
that say why the change waits, or that it never can start), or the `Need` of a fact nobody has
found out yet (the pre-checks as Prometheus answers them, the target items' health), which the
service finds out before asking again: so Prometheus is asked only once the window is open.
`START_GATES` is the chain, as data, in the order the gates are asked (cert-manager's policy
chains): a new rule is one function and one entry. The first refusal holds the change, except
that the health gates (`joint`) are asked together and report one HealthGate condition, with
every reason they found.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsledger.domain import changes
from opsledger.domain.change_facts import Need
from opsledger.domain.changes import Health, Verdict
from opsledger.domain.outcome import ConditionUpdate
from opsledger.domain.windows import Decision
from opsledger.models.change import ChangeSpec, ChangeType
from opsledger.models.common import ConditionStatus
from opsledger.models.servicelevel import ServiceLevelSpec

WINDOW_OPEN = "WindowOpen"
HEALTH_GATE = "HealthGate"
OUTSIDE_WINDOW = "OutsideWindow"
HOLDS = frozenset({"freeze", "blackout", "calendar"})  # the rules of a Decision that hold changes


@dataclass(frozen=True)
class Go:
    """The gate lets the change go, saying so in `condition` where it reports one."""

    condition: ConditionUpdate | None = None


GO = Go()


@dataclass(frozen=True)
class Refusal:
    """Why a gate holds the change: its condition reason and message."""

    reason: str
    message: str
    unknown: bool = False  # the gate cannot tell (health unknown): its condition reads Unknown
    final: bool = False  # the change can never start: it fails


Answer = Go | Refusal | Need


@dataclass(frozen=True)
class StartFacts:
    """What the start gates look at; None where it is not known (yet)."""

    now: datetime
    spec: ChangeSpec
    level: ServiceLevelSpec | None  # the service's ServiceLevel
    level_status: Mapping[str, Any]  # its status (Measured, BudgetExhausted)
    decision: Decision | None  # the window decision at `now` (None without a ServiceLevel)
    blocked_by: tuple[str, ...] = ()  # changes in progress on the same or dependent items
    pre_checks: Verdict | None = None  # None: not measured yet
    targets: Mapping[str, Mapping[str, Any] | None] | None = None  # None: not looked up yet

    @property
    def emergency(self) -> bool:
        return self.spec.type == ChangeType.EMERGENCY


Policy = Callable[[StartFacts], Answer]


@dataclass(frozen=True)
class Gate:
    """One named policy of the chain, and the condition type its refusal is reported on."""

    name: str
    policy: Policy
    condition: str | None  # None: another condition says why already (Conflict)
    joint: bool = False  # asked with the other joint gates; their reasons go into one condition


# -- the policies ------------------------------------------------------------------------


def service_level(facts: StartFacts) -> Answer:
    """The service's ServiceLevel holds its windows, freezes and budget: without it, no start."""
    if facts.level is not None:
        return GO
    return Refusal(
        "ServiceLevelNotFound",
        f"no ServiceLevel with spec.service={facts.spec.service!r} in this namespace: its windows, "
        "freezes and budget decide when the change may run; create it or fix spec.service",
    )


def deadline(facts: StartFacts) -> Answer:
    """No eligible time is left before schedule.notAfter: the change fails."""
    decision, schedule = facts.decision, facts.spec.schedule
    if decision is None or decision.allowed or decision.next is not None:
        return GO
    if schedule is None or schedule.not_after is None:
        return GO
    return Refusal(OUTSIDE_WINDOW, decision.reason, final=True)


def freeze(facts: StartFacts) -> Answer:
    """A hold (a freeze, a blackout, a calendar event) keeps every change but an emergency one
    from starting, unless its approved freeze exception is in force."""
    decision = facts.decision
    if decision is None or decision.allowed or facts.emergency:
        return GO
    if decision.rule in HOLDS:
        return Refusal(OUTSIDE_WINDOW, decision.reason)
    return GO


def schedule(facts: StartFacts) -> Answer:
    """The change's own schedule.notBefore has not come yet."""
    decision = facts.decision
    if decision is None or decision.allowed or decision.rule != "schedule.notBefore":
        return GO
    return Refusal(OUTSIDE_WINDOW, decision.reason)


def window(facts: StartFacts) -> Answer:
    """Inside one of the service's maintenance windows (or it has none; emergencies skip them)."""
    decision = facts.decision
    if decision is None:
        return GO
    if not decision.allowed:
        return Refusal(OUTSIDE_WINDOW, decision.reason)
    return Go(ConditionUpdate(WINDOW_OPEN, ConditionStatus.TRUE, "InsideWindow", decision.reason))


def conflicts(facts: StartFacts) -> Answer:
    """A change waits while another one is in progress on its items (Conflict names it);
    an emergency change does not."""
    if facts.blocked_by and not facts.emergency:
        return Refusal("Conflict", f"in progress on these items: {', '.join(facts.blocked_by)}")
    return GO


def _verdict(verdict: Verdict) -> Answer:
    if verdict.health is Health.HEALTHY:
        return GO
    unknown = verdict.health is Health.UNKNOWN
    return Refusal("HealthUnknown" if unknown else "Unhealthy", verdict.message, unknown=unknown)


def pre_checks(facts: StartFacts) -> Answer:
    """The change's pre-checks, and no critical alert firing for its service."""
    if facts.pre_checks is None:
        return Need.PRE_CHECKS
    return _verdict(facts.pre_checks)


def budget(facts: StartFacts) -> Answer:
    """An exhausted (or unmeasured) error budget holds normal changes."""
    if facts.spec.type != ChangeType.NORMAL or facts.level is None:
        return GO
    verdict = Verdict()
    changes.judge_budget(facts.level_status, facts.level, verdict)
    return _verdict(verdict)


def targets_health(facts: StartFacts) -> Answer:
    """A Down target item holds the change; an emergency change may be its fix."""
    if facts.emergency:
        return GO
    if facts.targets is None:
        return Need.TARGETS
    verdict = Verdict()
    changes.judge_targets(facts.targets, verdict)
    return _verdict(verdict)


START_GATES: tuple[Gate, ...] = (
    Gate("service_level", service_level, WINDOW_OPEN),
    Gate("deadline", deadline, WINDOW_OPEN),
    Gate("freeze", freeze, WINDOW_OPEN),
    Gate("schedule", schedule, WINDOW_OPEN),
    Gate("window", window, WINDOW_OPEN),
    Gate("conflicts", conflicts, None),
    Gate("pre_checks", pre_checks, HEALTH_GATE, joint=True),
    Gate("budget", budget, HEALTH_GATE, joint=True),
    Gate("targets_health", targets_health, HEALTH_GATE, joint=True),
)


# -- the chain ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Gated:
    """What the chain decided: the conditions the gates report, and who held the change."""

    conditions: tuple[ConditionUpdate, ...] = ()
    held_by: tuple[str, ...] = ()  # the gate that held it (the joint gates that did)
    final: bool = False  # it can never start
    needs: Need | None = None  # ask again once this is found out
    reason: str = ""  # the holding refusal's message

    @property
    def go(self) -> bool:
        return not self.held_by and self.needs is None


def health_condition(verdict: Verdict, what: str) -> ConditionUpdate:
    """The HealthGate condition for a verdict on `what` (pre-checks, post-checks)."""
    if verdict.health is Health.HEALTHY:
        return ConditionUpdate(
            HEALTH_GATE, ConditionStatus.TRUE, "Healthy", f"{what}: {verdict.message}"
        )
    if verdict.health is Health.UNKNOWN:
        return ConditionUpdate(
            HEALTH_GATE,
            ConditionStatus.UNKNOWN,
            "HealthUnknown",
            f"{what}: health is unknown, so the change waits: {verdict.message}",
        )
    return ConditionUpdate(
        HEALTH_GATE, ConditionStatus.FALSE, "Unhealthy", f"{what} fail: {verdict.message}"
    )


def evaluate(facts: StartFacts, chain: tuple[Gate, ...] = START_GATES) -> Gated:
    """Ask the gates of `chain` in order."""
    conditions: list[ConditionUpdate] = []
    health = Verdict()  # the joint gates' reasons
    held: list[str] = []
    for gate in chain:
        answer = gate.policy(facts)
        if isinstance(answer, Need):
            return Gated(tuple(conditions), needs=answer)
        if isinstance(answer, Go):
            if answer.condition is not None:
                conditions.append(answer.condition)
            continue
        if gate.joint:
            (health.unknown if answer.unknown else health.fail)(answer.message)
            held.append(gate.name)
            continue
        if gate.condition is not None:
            status = ConditionStatus.UNKNOWN if answer.unknown else ConditionStatus.FALSE
            conditions.append(
                ConditionUpdate(gate.condition, status, answer.reason, answer.message)
            )
        return Gated(tuple(conditions), (gate.name,), final=answer.final, reason=answer.message)
    if any(gate.joint for gate in chain):
        conditions.append(health_condition(health, "pre-checks"))
    return Gated(tuple(conditions), tuple(held), reason=health.message if held else "")
