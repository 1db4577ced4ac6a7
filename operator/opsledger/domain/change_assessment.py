"""Conflicts and risk of a change among the other changes of its namespace, from the entries of
the operator's change index (or the objects `opsledger change plan` lists), and what they mean
for the change's status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsledger.domain import changes
from opsledger.domain.impact import ImpactGraph
from opsledger.domain.outcome import ConditionUpdate
from opsledger.domain.times import parse_time
from opsledger.models.change import ChangePhase, ChangeSpec
from opsledger.models.common import ConditionStatus

CONFLICT = "Conflict"

# A change as the change index holds it: (name, targets, start, end, phase, finished at).
Entry = Sequence[Any]


def phase_of(value: Any) -> ChangePhase | None:
    """The phase status names (None for none, or one this version does not know)."""
    try:
        return ChangePhase(value) if value else None
    except ValueError:
        return None


def entry(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    """A Change object as the change index holds it."""
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


def planned(namespace: str, item: Entry) -> changes.Planned:
    name, targets, start, end, phase = item[:5]
    return changes.Planned(
        name=str(name),
        targets=frozenset(f"{namespace}/{t}" for t in targets),
        start=parse_time(start),
        end=parse_time(end),
        active=phase_of(phase) in changes.ACTIVE,
    )


def me(
    namespace: str, name: str, spec: ChangeSpec, window: Mapping[str, Any], *, active: bool
) -> changes.Planned:
    """This change: its window where one is known, else its schedule."""
    schedule = spec.schedule
    return changes.Planned(
        name=name,
        targets=frozenset(f"{namespace}/{t}" for t in spec.targets),
        start=parse_time(window.get("start")) or (schedule.not_before if schedule else None),
        end=parse_time(window.get("end")) or (schedule.not_after if schedule else None),
        active=active,
    )


def burn_rate(level: Mapping[str, Any] | None) -> float | None:
    """The fastest 1h burn rate of the service's objectives, as the ServiceLevel last measured."""
    rates = [
        float(rate)
        for objective in ((level or {}).get("status") or {}).get("objectives") or []
        for window, rate in (objective.get("burnRates") or {}).items()
        if window == "1h" and rate is not None
    ]
    return max(rates) if rates else None


def dependents(graph: ImpactGraph, mine: changes.Planned) -> set[str]:
    """Items depending on the change's targets (not the targets themselves)."""
    return set().union(*(graph.dependents(t) for t in mine.targets)) - mine.targets


def judge(
    mine: changes.Planned,
    entries: Sequence[Entry],
    namespace: str,
    *,
    graph: ImpactGraph,
    criticality: Mapping[str, Sequence[str]],
    level: Mapping[str, Any] | None,
    has_plan: bool,
    now: datetime,
) -> tuple[list[changes.Planned], changes.Risk]:
    """Conflicts and risk of `mine` among the namespace's changes (index entries)."""
    open_ = [planned(namespace, e) for e in entries if phase_of(e[4]) not in changes.FINAL]
    found = changes.conflicts(mine, open_, graph)
    failures = [
        (frozenset(f"{namespace}/{t}" for t in e[1]), ended)
        for e in entries
        if phase_of(e[4]) in (ChangePhase.FAILED, ChangePhase.ROLLED_BACK)
        if e[0] != mine.name and (ended := parse_time(e[5])) is not None
    ]
    risk = changes.assess_risk(
        criticalities=[v for t in mine.targets for v in criticality.get(t, ())],
        dependents=len(dependents(graph, mine)),
        recent_failures=changes.recent_failures(failures, mine.targets, now),
        burn_rate=burn_rate(level),
        has_plan=has_plan,
    )
    return found, risk


@dataclass(frozen=True)
class Assessment:
    """What the conflicts and the risk mean for the change in this tick."""

    status: dict[str, Any] = field(default_factory=dict)  # conflicts, risk, riskScore, ...
    condition: ConditionUpdate | None = None  # Conflict
    blocked_by: tuple[str, ...] = ()  # conflicting changes in progress now
    unknown_targets: tuple[str, ...] = ()  # targets no ConfigurationItem is known for
    affected: tuple[str, ...] = ()  # targets and what depends on them


def assess(
    *,
    namespace: str,
    name: str,
    spec: ChangeSpec,
    window: Mapping[str, Any],
    active: bool,
    entries: Sequence[Entry],
    relations: Mapping[str, Sequence[Any]],
    criticality: Mapping[str, Sequence[str]],
    level: Mapping[str, Any] | None,
    now: datetime,
) -> Assessment:
    """Conflicts with the other open changes and the risk, from the operator's indexes:
    `relations` maps an item to the stores of its relationships, `criticality` an item to its
    criticality (one per object holding the name)."""
    graph = ImpactGraph({k: [p for v in store for p in v] for k, store in relations.items()})
    mine = me(namespace, name, spec, window, active=active)
    found, risk = judge(
        mine,
        entries,
        namespace,
        graph=graph,
        criticality=criticality,
        level=level,
        has_plan=bool(spec.plan),
        now=now,
    )
    if found:
        names = ", ".join(
            f"{c.name} ({'in progress' if c.active else 'overlapping'})" for c in found
        )
        condition = ConditionUpdate(
            CONFLICT,
            ConditionStatus.TRUE,
            "Overlapping",
            f"overlaps in time on the same or dependent items with: {names}; a change waits "
            "while another one on its items is in progress",
        )
    else:
        condition = ConditionUpdate(
            CONFLICT, ConditionStatus.FALSE, "NoConflict", "no overlapping change"
        )
    affected = {*mine.targets, *dependents(graph, mine)}
    return Assessment(
        status={
            "conflicts": [c.name for c in found],
            "risk": risk.level,
            "riskScore": risk.score,
            "riskFactors": list(risk.factors),
        },
        condition=condition,
        blocked_by=tuple(c.name for c in found if c.active),
        unknown_targets=tuple(t for t in spec.targets if f"{namespace}/{t}" not in criticality),
        affected=tuple(sorted(t.removeprefix(f"{namespace}/") for t in affected)),
    )
