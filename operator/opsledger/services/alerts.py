"""Alert use cases: what an Alertmanager notification does, and doing it.

`domain.alerts` turns each alert into an action (open an Incident, or resolve it); `apply`
carries one out against the API server. A firing alert opens its Incident through the one
Incident factory, or finds it open already (Alertmanager repeats and retries, and every repeat
has the same name); a resolved alert resolves it. An alert for a namespace that does not exist
goes to the receiver's namespace.
"""

from __future__ import annotations

import logging

from opsledger.domain.alerts import Action, Routing, actions
from opsledger.models import INCIDENT
from opsledger.models.alertmanager import Notification
from opsledger.models.incident import RESOLVED_STATES, OriginType
from opsledger.services.context import Context
from opsledger.services.incident_factory import open_incident

log = logging.getLogger("opsledger.receiver")


def routing(ctx: Context) -> Routing:
    """Where alerts' Incidents go and which labels say what they affect, from the settings."""
    settings = ctx.settings
    return Routing(
        default_namespace=settings.receiver_namespace,
        service_label=settings.receiver_service_label,
        item_label=settings.receiver_item_label,
    )


def plan(ctx: Context, notification: Notification, routing: Routing) -> list[Action]:
    """Every alert's action, in the order Alertmanager listed them."""
    return actions(notification, routing, resolve=ctx.settings.receiver_resolve)


def apply(ctx: Context, action: Action) -> str:
    """Carry out one action (blocking: call it in a thread); returns the outcome: opened,
    duplicate, resolved, already-resolved or unknown."""
    kube = ctx.kube
    assert kube is not None
    namespace = action.namespace
    if kube.get("v1", "Namespace", namespace, "") is None:
        namespace = ctx.settings.receiver_namespace
    existing = kube.get_custom(INCIDENT.plural, action.name, namespace)
    if action.kind == "resolve":
        if existing is None:
            return "unknown"  # never opened here (or deleted by people): nothing to resolve
        if (existing.get("spec") or {}).get("state") in RESOLVED_STATES:
            return "already-resolved"
        kube.patch_spec(
            INCIDENT.plural,
            action.name,
            namespace,
            {"state": "Resolved", "resolution": action.resolution},
        )
        log.info("resolved Incident %s/%s: %s", namespace, action.name, action.resolution)
        return "resolved"
    if existing is not None:
        return "duplicate"
    opened = open_incident(
        kube,
        namespace,
        action.name,
        origin=OriginType.ALERTMANAGER,
        reference=action.fingerprint,
        spec=action.spec,
        labels=action.labels,
    )
    if not opened:
        return "duplicate"
    log.info("opened Incident %s/%s for alert %s", namespace, action.name, action.alertname)
    return "opened"
