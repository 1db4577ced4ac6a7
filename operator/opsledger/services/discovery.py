"""Discovery: a ConfigurationItem for each object the discovery selector picks and no item
describes yet (which objects, and the items' names, are rules in `domain/ci_lifecycle.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from opsledger.domain.ci_lifecycle import discovered_item, discovery_namespace
from opsledger.domain.outcome import Event
from opsledger.models import CONFIGURATION_ITEM
from opsledger.models.common import API_GROUP, API_VERSION
from opsledger.services.context import Context


async def discover_item(
    ctx: Context, kind: str, source: dict[str, Any], relations: Mapping[str, Any]
) -> tuple[dict[str, Any], Event] | None:
    """Create the item for `source` if discovery selects it; the item as created and the Event
    to post about it, or None when discovery makes none (or one of that name exists).

    Items for cluster-scoped objects (Nodes, Namespaces, PersistentVolumes) live in
    OPSLEDGER_DISCOVERY_INFRA_NAMESPACE, named <kind>-<name>."""
    settings = ctx.settings
    metadata = source.get("metadata") or {}
    namespace = discovery_namespace(
        kind,
        metadata,
        selector=ctx.discovery,
        kinds=settings.discovery_kinds,
        namespaces=settings.discovery_namespaces,
        infra_namespace=settings.discovery_infra_namespace,
    )
    if namespace is None or ctx.kube is None:
        return None
    body = discovered_item(
        kind,
        source,
        namespace=namespace,
        relations=relations,
        group_version=f"{API_GROUP}/{API_VERSION}",
        item_kind=CONFIGURATION_ITEM.kind,
    )
    created = await asyncio.to_thread(
        ctx.kube.create_custom, CONFIGURATION_ITEM.plural, namespace, body
    )
    if created is None:
        return None
    message = f"created for {kind} {namespace}/{metadata.get('name')}, selected by discovery"
    return created, Event("Normal", "Discovered", message)
