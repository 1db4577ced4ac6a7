"""Where the guard listens, kept by the operator so that a stopped operator stops nothing else.

- The sources of protected items carry the label `opsledger.io/protected=true` (and
  `opsledger.io/protected-by: <item>`, so the operator takes off only its own label): the
  guard's webhook selects objects by it, so an unprotected workload is never sent to the
  operator. The guard refuses taking the label (or the annotation) off outside a change.
- The webhook for subresources (scale, a Pod's exec, deletion...) cannot select by the
  workload's labels (the API server sends a Scale, a PodExecOptions): its match condition names
  the namespaces holding protected objects, refreshed every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from opsledger.adapters.kube import Kube
from opsledger.domain.admission import (
    GUARD_SUBRESOURCES,
    namespaces_condition,
)
from opsledger.domain.observe import PROTECTED_BY, PROTECTED_LABEL
from opsledger.domain.views import PROTECTING
from opsledger.models.common import ObjectReference
from opsledger.services.context import Context

log = logging.getLogger("opsledger.guard")

# The kinds a label alone can protect (without an item), looked for across the cluster.
LABELLED_KINDS = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "ReplicaSet"),
    ("batch/v1", "CronJob"),
    ("batch/v1", "Job"),
)


async def keep_label(
    ctx: Context,
    *,
    item: str,
    protected: bool,
    ref: ObjectReference,
    source: dict[str, Any],
    namespace: str,
) -> None:
    """Label the source of a protecting item; take the operator's own label off again when the
    item no longer protects it."""
    if ctx.kube is None:
        return
    metadata = source.get("metadata") or {}
    labels = metadata.get("labels") or {}
    mine = (metadata.get("annotations") or {}).get(PROTECTED_BY) == item
    if protected and labels.get(PROTECTED_LABEL) != "true":
        body: dict[str, Any] = {
            "labels": {PROTECTED_LABEL: "true"},
            "annotations": {PROTECTED_BY: item},
        }
    elif not protected and mine:
        body = {"labels": {PROTECTED_LABEL: None}, "annotations": {PROTECTED_BY: None}}
    else:
        return
    await asyncio.to_thread(
        ctx.kube.patch,
        ref.api_version,
        ref.kind,
        ref.name,
        namespace,
        patch_type="merge",
        body={"metadata": body},
    )
    if protected and ctx.settings.webhook_port is not None and ctx.guarded_namespaces is not None:
        await refresh(ctx)  # its subresources are guarded now, not at the next look


async def _labelled(kube: Kube) -> set[str]:
    return await asyncio.to_thread(
        kube.labelled_namespaces, LABELLED_KINDS, f"{PROTECTED_LABEL}=true"
    )


async def labelled(ctx: Context) -> frozenset[str] | None:
    """The namespaces holding objects the guard's label protects, asked of the API server
    (None when it cannot answer: the subresource guard then listens everywhere, failing
    closed, until the first refresh)."""
    if ctx.kube is None:
        return None
    try:
        found = await _labelled(ctx.kube)
    except Exception as exc:
        log.warning(
            "the protected namespaces could not be listed (%s): the subresource guard "
            "listens to every namespace until the next look",
            exc,
        )
        return None
    return frozenset(found)


async def refresh(ctx: Context) -> None:
    """Point the subresource webhook's match condition at the namespaces holding protected
    objects (items from the views, labelled objects from the API server), when that changed."""
    kube = ctx.kube
    if kube is None:
        return
    namespaces = frozenset({*ctx.views[PROTECTING].keys(), *await _labelled(kube)})
    found = await asyncio.to_thread(
        kube.set_match_condition,
        ctx.settings.webhook_name,
        GUARD_SUBRESOURCES,
        namespaces_condition(namespaces),
    )
    if not found:
        if ctx.guarded_namespaces != frozenset({"?"}):
            log.warning(
                "no ValidatingWebhookConfiguration %s with webhook %s: the subresource guard's "
                "namespaces are not kept",
                ctx.settings.webhook_name,
                GUARD_SUBRESOURCES,
            )
        ctx.guarded_namespaces = frozenset({"?"})  # said once
        return
    if namespaces == ctx.guarded_namespaces:
        return
    ctx.guarded_namespaces = namespaces
    log.info(
        "the subresource guard listens to %d namespaces: %s",
        len(namespaces),
        ", ".join(sorted(namespaces)),
    )
