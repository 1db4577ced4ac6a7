"""Keeping the cross-object views (domain/views.py): one list per kind fills them before any
handler runs, the handlers' watch events keep them, and a list now and then drops what no event
reported gone (an object deleted between the first list and the start of the watch)."""

from __future__ import annotations

import asyncio
from typing import Any

from opsledger.services.context import Context

REFRESH_INTERVAL = 600.0  # seconds between two lists of every kind


async def refresh(ctx: Context) -> int:
    """List every kind the views hold and take the lists in; returns how many objects were
    dropped as gone."""
    if ctx.kube is None:
        return 0
    dropped = 0
    for plural in ctx.views.indexers:
        since = ctx.views.mark()
        objects = await asyncio.to_thread(_list, ctx, plural)
        dropped += ctx.views.replace(plural, objects, since)
    return dropped


def _list(ctx: Context, plural: str) -> list[dict[str, Any]]:
    assert ctx.kube is not None
    objects: list[dict[str, Any]] = []
    namespaces: list[str | None] = list(ctx.settings.namespaces) or [None]
    for namespace in namespaces:
        objects.extend(ctx.kube.list_versioned(plural, namespace)[0])
    return objects


async def keep_refreshing(ctx: Context, interval: float = REFRESH_INTERVAL) -> None:
    """List again every `interval` seconds (the first list is the start-up one)."""
    while True:
        await asyncio.sleep(interval)
        await refresh(ctx)
