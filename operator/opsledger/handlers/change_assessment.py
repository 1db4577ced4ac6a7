"""Conflicts and risk of a change, in status and for `opsledger change plan`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from opsledger.adapters.kube import Kube
from opsledger.adapters.prometheus import Prometheus
from opsledger.domain import changes
from opsledger.domain.changes import Health
from opsledger.domain.impact import ImpactGraph
from opsledger.domain.windows import rfc3339
from opsledger.handlers.change_execution import gate
from opsledger.handlers.change_steps import (
    CONFLICT,
    CRITICALITY,
    PLANS,
    Step,
    moment,
    phase_of,
)
from opsledger.models.change import ChangePhase, ChangeSpec, ChangeType
from opsledger.models.common import ConditionStatus
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.services.indexes import RELATIONS

# -- conflicts and risk ------------------------------------------------------------------


def _planned(namespace: str, entry: Sequence[Any]) -> changes.Planned:
    name, targets, start, end, phase = entry[:5]
    return changes.Planned(
        name=str(name),
        targets=frozenset(f"{namespace}/{t}" for t in targets),
        start=moment(start),
        end=moment(end),
        active=phase_of(phase) in changes.ACTIVE,
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
    open_ = [_planned(namespace, e) for e in entries if phase_of(e[4]) not in changes.FINAL]
    found = changes.conflicts(me, open_, graph)
    failures = [
        (frozenset(f"{namespace}/{t}" for t in e[1]), ended)
        for e in entries
        if phase_of(e[4]) in (ChangePhase.FAILED, ChangePhase.ROLLED_BACK)
        if e[0] != me.name and (ended := moment(e[5])) is not None
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
        start=moment(window.get("start")) or (schedule.not_before if schedule else None),
        end=moment(window.get("end")) or (schedule.not_after if schedule else None),
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
        decision = changes.change_window(now, spec, sl)
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
            sl = ServiceLevelSpec.model_validate(level.get("spec") or {})
            changes.judge_budget(level.get("status") or {}, sl, verdict)
        report["health"] = {"status": verdict.health.value, "reasons": verdict.reasons}
        if verdict.health is not Health.HEALTHY:
            blockers.append(f"health is {verdict.health.value.lower()}: {verdict.message}")
    report["blockers"] = blockers
    report["ok"] = not blockers
    return report
