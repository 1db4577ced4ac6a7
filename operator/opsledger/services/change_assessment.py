"""Conflicts and risk of a change from the API server, for `opsledger change plan` (a dry run
for a pull-request check); in each tick the operator judges them from its indexes
(`services/change.py`), by the same rules in `domain/change_assessment.py`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from opsledger.adapters.kube import Kube
from opsledger.adapters.prometheus import Prometheus
from opsledger.domain import change_assessment, changes
from opsledger.domain.changes import Health
from opsledger.domain.impact import ImpactGraph
from opsledger.domain.times import rfc3339
from opsledger.models import CHANGE, CONFIGURATION_ITEM, SERVICE_LEVEL
from opsledger.models.change import ChangeSpec, ChangeType
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.services.change_health import measure_checks


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
    items = await asyncio.to_thread(
        kube.list_namespaced_custom, CONFIGURATION_ITEM.plural, namespace
    )
    levels = await asyncio.to_thread(kube.list_namespaced_custom, SERVICE_LEVEL.plural, namespace)
    others = await asyncio.to_thread(kube.list_namespaced_custom, CHANGE.plural, namespace)
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
    me = change_assessment.me(namespace, name, spec, window, active=False)
    found, risk = change_assessment.judge(
        me,
        [change_assessment.entry(o) for o in others],
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
    if prometheus is None:
        report["health"] = {"status": "NotChecked", "reasons": ["no Prometheus given"]}
    else:
        verdict = await measure_checks(prometheus, spec, namespace, pre=True)
        if spec.type == ChangeType.NORMAL and level is not None:
            sl = ServiceLevelSpec.model_validate(level.get("spec") or {})
            changes.judge_budget(level.get("status") or {}, sl, verdict)
        report["health"] = {"status": verdict.health.value, "reasons": verdict.reasons}
        if verdict.health is not Health.HEALTHY:
            blockers.append(f"health is {verdict.health.value.lower()}: {verdict.message}")
    report["blockers"] = blockers
    report["ok"] = not blockers
    return report
