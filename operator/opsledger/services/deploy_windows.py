"""Carrying the change calendar to Argo CD AppProjects and Flux Kustomizations and HelmReleases
that opt in (domain/deploy_windows.py says how): one pass of a loop only the leader runs. A
cluster without their CRDs is skipped quietly."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from opsledger.domain.deploy_windows import (
    CALENDAR_LABEL,
    calendar_of,
    follows_namespace,
    hold_decision,
    merged_windows,
    suspension,
    sync_windows,
)
from opsledger.domain.freezes import SUSPENDED_BY
from opsledger.domain.views import SERVICE_LEVELS
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.services import calendars
from opsledger.services.context import Context

log = logging.getLogger("opsledger.deploy-windows")
APP_PROJECT = ("argoproj.io/v1alpha1", "AppProject")
NAMESPACE = ("v1", "Namespace")
SUSPENDABLE = (
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
)
UNSERVED_RECHECK = timedelta(minutes=5)  # how soon a kind the cluster did not serve is asked again


async def keep(ctx: Context) -> None:
    """Bring every opted-in AppProject's sync windows and Kustomization's and HelmRelease's
    suspension in line with its ServiceLevel's calendar."""
    if ctx.kube is None:
        return
    await _projects(ctx)
    for api_version, kind in SUSPENDABLE:
        await _suspendables(ctx, api_version, kind)


def _level(ctx: Context, key: tuple[str, str] | None) -> ServiceLevelSpec | None:
    found = list(ctx.views[SERVICE_LEVELS].get(key, ())) if key else []
    if not found:
        return None
    try:
        return ServiceLevelSpec.model_validate(found[0].get("spec") or {})
    except ValidationError:
        return None  # its own status says why


async def _opted_in(ctx: Context, api_version: str, kind: str) -> list[dict[str, Any]]:
    assert ctx.kube is not None
    now = ctx.clock()
    again = ctx.unserved.get((api_version, kind))
    if again is not None and now < again:
        return []
    try:
        found = await asyncio.to_thread(
            ctx.kube.labelled, api_version, kind, f"{CALENDAR_LABEL}=true"
        )
    except LookupError:  # the CRD is not installed here: asked again in a while
        ctx.unserved[(api_version, kind)] = now + UNSERVED_RECHECK
        return []
    ctx.unserved.pop((api_version, kind), None)
    return found


async def _projects(ctx: Context) -> None:
    assert ctx.kube is not None
    now = ctx.clock()
    for project in await _opted_in(ctx, *APP_PROJECT):
        key = calendar_of(project)
        level = _level(ctx, key)
        if key is None or level is None:
            continue
        holds = calendars.holds(ctx, [c.name for c in level.calendars], now)
        wanted = sync_windows(key[1], level, holds, now)
        merged = merged_windows((project.get("spec") or {}).get("syncWindows") or [], wanted)
        if merged is None:
            continue
        metadata = project["metadata"]
        await asyncio.to_thread(
            ctx.kube.patch,
            *APP_PROJECT,
            str(metadata["name"]),
            str(metadata["namespace"]),
            patch_type="merge",
            body={"spec": {"syncWindows": merged}},
        )
        log.info(
            "AppProject %s/%s: %d sync windows from the calendar of %s/%s",
            metadata["namespace"],
            metadata["name"],
            len(wanted),
            *key,
        )


async def _namespaced(
    ctx: Context, api_version: str, kind: str
) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """The objects of a kind that follow a calendar, each with its opted-in Namespace (or None
    when the object opted in itself)."""
    assert ctx.kube is not None
    kube = ctx.kube
    found: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any] | None]] = {
        (str(o["metadata"].get("namespace")), str(o["metadata"]["name"])): (o, None)
        for o in await _opted_in(ctx, api_version, kind)
    }
    if ctx.unserved.get((api_version, kind)) is not None:
        return list(found.values())  # the kind is not served here
    namespaces = await _opted_in(ctx, *NAMESPACE)
    for namespace in namespaces:
        name = str(namespace["metadata"]["name"])
        try:
            inside = await asyncio.to_thread(kube.list_namespaced, api_version, kind, name)
        except LookupError:
            break
        for o in inside:
            key = (name, str(o["metadata"]["name"]))
            if key not in found and follows_namespace(o):
                found[key] = (o, namespace)
    return list(found.values())


async def _suspendables(ctx: Context, api_version: str, kind: str) -> None:
    assert ctx.kube is not None
    now = ctx.clock()
    for obj, namespace in await _namespaced(ctx, api_version, kind):
        key = calendar_of(obj, namespace)
        level = _level(ctx, key)
        if key is None or level is None:
            continue
        holds = calendars.holds(ctx, [c.name for c in level.calendars], now)
        patch = suspension(obj, hold_decision(level, holds, now), now)
        if patch is None:
            continue
        metadata = obj["metadata"]
        await asyncio.to_thread(
            ctx.kube.patch,
            api_version,
            kind,
            str(metadata["name"]),
            str(metadata["namespace"]),
            patch_type="merge",
            body=patch,
        )
        suspended = patch["spec"]["suspend"]
        message = (
            f"suspended by the change calendar of {key[0]}/{key[1]}, "
            f"{patch['metadata']['annotations'][SUSPENDED_BY]}"
            if suspended
            else f"the change calendar of {key[0]}/{key[1]} lets it deploy again: resumed"
        )
        log.info("%s %s/%s: %s", kind, metadata["namespace"], metadata["name"], message)
        await asyncio.to_thread(
            ctx.kube.post_event,
            obj,
            type="Normal",
            reason="SuspendedByCalendar" if suspended else "ResumedByCalendar",
            message=message,
            component="opsledger",
        )
