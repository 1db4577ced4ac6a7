"""Status written from outside an object's own handlers (the background loops): computed from
the copy that was read, applied only onto that version, recomputed onto a newer one on a
conflict, and the Events its condition changes post."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opsledger.adapters.kube import ConflictError, Kube
from opsledger.domain.outcome import Event

ATTEMPTS = 5  # conflicts in a row before a loop leaves the object to its next pass

Compute = Callable[[Mapping[str, Any]], tuple[dict[str, Any] | None, Sequence[Event]]]


async def write_status(kube: Kube, plural: str, obj: Mapping[str, Any], compute: Compute) -> None:
    """Patch `obj`'s status with what `compute(obj)` gives (None: nothing to write), onto the
    version it was computed from, so a handler's newer conditions (such as Ready) are never
    wiped; then post its Events."""
    meta = obj.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace"))
    events: Sequence[Event] = []
    for _ in range(ATTEMPTS):
        patch, events = compute(obj)
        if patch is None:
            break
        try:
            await asyncio.to_thread(
                kube.patch_status,
                plural,
                name,
                namespace,
                patch,
                resource_version=(obj.get("metadata") or {}).get("resourceVersion"),
            )
            break
        except LookupError:
            return  # deleted meanwhile
        except ConflictError:  # a handler wrote meanwhile: merge onto its version
            fresh = await asyncio.to_thread(kube.get_custom, plural, name, namespace)
            if fresh is None:
                return
            obj = fresh
    else:
        return
    await post_events(kube, obj, events)


async def post_events(kube: Kube, obj: Mapping[str, Any], events: Sequence[Event]) -> None:
    """Post Events about `obj` from outside Kopf's handler context."""
    for event in events:
        await asyncio.to_thread(
            kube.post_event,
            obj,
            type=event.type,
            reason=event.reason,
            message=event.message,
            component="opsledger",
        )
