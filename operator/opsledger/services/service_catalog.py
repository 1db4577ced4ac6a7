"""The service catalog, published where its readers are: each ServiceLevel's status lists the
catalog items for its service, as the CMDB's protected branch holds them, so the service desk
(which watches ServiceLevels) and `kubectl itsm` offer them without reading Git.

Written only when it differs: a catalog that does not change costs no API writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from opsledger.domain import catalog
from opsledger.domain.views import SERVICE_LEVELS
from opsledger.models import SERVICE_LEVEL
from opsledger.models.request import CATALOG_DIR, CatalogEntry, OfferedParameter
from opsledger.services.context import Context
from opsledger.services.errors import CMDBUnavailableError
from opsledger.services.records import call

log = logging.getLogger(__name__)


def entries(files: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """service → its items as the desk offers them, from (path, text) of the catalog's files;
    an item that cannot be read is left out (`opsledger cmdb validate` names it)."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for path, text in sorted(files.items()):
        name = path.removeprefix(f"{CATALOG_DIR}/").removesuffix(".yaml")
        try:
            item = catalog.parse_item(path, text)
        except catalog.CatalogError as exc:
            log.warning("catalog item left out: %s", exc)
            continue
        if not item.service:
            continue
        entry = CatalogEntry(
            name=name,
            title=item.title,
            description=item.description,
            approval=item.approval,
            fulfilled_by="change" if item.fulfilment else "person",
            parameters=[OfferedParameter.model_validate(p.model_dump()) for p in item.parameters],
        )
        by_service.setdefault(item.service, []).append(
            entry.model_dump(mode="json", by_alias=True, exclude_none=True)
        )
    return by_service


async def publish(ctx: Context) -> int:
    """Bring every ServiceLevel's status.catalog up to date; how many were written."""
    assert ctx.cmdb is not None
    assert ctx.kube is not None
    await call(ctx.cmdb.refresh)
    commit = await call(ctx.cmdb.head)
    paths = [p for p in await call(ctx.cmdb.list_files, CATALOG_DIR) if p.endswith(".yaml")]
    files = {p: text for p in paths if (text := await call(ctx.cmdb.read, p)) is not None}
    wanted = entries(files)
    written = 0
    for (namespace, service), levels in list(ctx.views[SERVICE_LEVELS].items()):
        for level in levels:
            status = level.get("status") or {}
            items = wanted.get(service, [])
            if (status.get("catalog") or []) == items:
                continue
            patch = {"catalog": items, "catalogCommit": commit}
            try:
                await asyncio.to_thread(
                    ctx.kube.patch_status, SERVICE_LEVEL.plural, level["name"], namespace, patch
                )
                written += 1
            except LookupError:
                continue  # deleted meanwhile
    return written


async def keep_publishing(ctx: Context) -> None:
    """Publish every `catalog_interval` seconds, for as long as the operator runs."""
    while True:
        try:
            await publish(ctx)
        except CMDBUnavailableError as exc:
            log.warning("the catalog is not published: %s", exc)
        await asyncio.sleep(ctx.settings.catalog_interval)
