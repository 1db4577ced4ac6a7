"""Capacity in the health pass: the CapacityRisk condition of an item, and the low-priority
Incident opened per item and resource predicted to run out soon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opsledger.domain import capacity
from opsledger.domain.health import Item
from opsledger.models.common import ConditionStatus
from opsledger.models.incident import OriginType
from opsledger.services.context import Context
from opsledger.services.incident_factory import open_incident


def capacity_condition(
    resources: list[capacity.Resource] | None, risk: capacity.Risk | None, horizon: str
) -> tuple[ConditionStatus, str, str] | None:
    """The CapacityRisk condition (status, reason, message); None when the item's class has no
    usage series to ask for."""
    if resources is None:
        return None
    if not resources:
        return (
            ConditionStatus.UNKNOWN,
            "NoData",
            "no usage series for cpu, memory or storage",
        )
    if risk and risk.at_risk:
        return ConditionStatus.TRUE, "ExhaustionPredicted", risk.message
    return (
        ConditionStatus.FALSE,
        "NoRiskWithinHorizon",
        f"no resource is predicted to run out within {horizon}",
    )


async def capacity_incident(
    ctx: Context,
    opened: set[str],
    obj: Mapping[str, Any],
    item: Item,
    *,
    resource: capacity.Resource,
    now: datetime,
) -> None:
    """One low-priority Incident per item and resource, named so it is never duplicated;
    `opened` holds those already asked for (namespace/name), so each is asked for once."""
    assert ctx.kube is not None
    name = capacity.incident_name(item.name, resource.resource)
    if f"{item.namespace}/{name}" in opened:
        return
    created = await asyncio.to_thread(
        open_incident,
        ctx.kube,
        item.namespace,
        name,
        origin=OriginType.CAPACITY,
        reference=f"{item.name}/{resource.resource}",
        labels={
            "opsledger.io/configurationitem": item.name,
            "opsledger.io/resource": resource.resource,
        },
        spec=capacity.incident_spec(
            item=item.name, service=item.service, resource=resource, now=now
        ),
    )
    opened.add(f"{item.namespace}/{name}")
    if created:
        await asyncio.to_thread(
            ctx.kube.post_event,
            obj,
            type="Warning",
            reason="CapacityIncident",
            message=f"Incident {name} opened: {capacity.describe(resource)}",
            component="opsledger",
        )
