"""From Alertmanager's alerts to Incidents: which incident, where, how bad, and when it resolves.

An alert occurrence is identified by its fingerprint (the hash of its labels) and the moment it
started firing: Alertmanager repeats a firing alert and retries failed deliveries, and every
repeat maps to the same Incident name, so the API server itself de-duplicates (a create that
finds the name taken is an update). When the same alert fires again after resolving, it has a
new start, and so a new Incident: recurrences stay countable (problem management counts them).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from opsledger.domain.times import rfc3339
from opsledger.models.alertmanager import Alert, Notification
from opsledger.models.incident import Level

# Alertmanager severities (the de-facto label values) → (impact, urgency).
SEVERITIES: dict[str, tuple[Level, Level]] = {
    "critical": (Level.HIGH, Level.HIGH),
    "page": (Level.HIGH, Level.HIGH),
    "error": (Level.HIGH, Level.MEDIUM),
    "major": (Level.HIGH, Level.MEDIUM),
    "warning": (Level.MEDIUM, Level.MEDIUM),
    "minor": (Level.MEDIUM, Level.LOW),
    "ticket": (Level.MEDIUM, Level.LOW),
    "info": (Level.LOW, Level.LOW),
    "none": (Level.LOW, Level.LOW),
}
DEFAULT_LEVELS = (Level.MEDIUM, Level.MEDIUM)

FINGERPRINT_LABEL = "opsledger.io/alert-fingerprint"
MANAGED_LABEL = "opsledger_incident"
ALERTNAME_LABEL = "opsledger.io/alertname"
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Routing:
    """Where alerts' incidents go and which labels say what they affect."""

    default_namespace: str
    service_label: str = "service"
    item_label: str = "configuration_item"
    namespace_label: str = "namespace"


@dataclass(frozen=True)
class Action:
    """Open an incident (or find it open already), or resolve it."""

    kind: Literal["open", "resolve"]
    namespace: str
    name: str
    fingerprint: str
    alertname: str
    spec: dict[str, Any] = field(default_factory=dict)  # for open
    labels: dict[str, str] = field(default_factory=dict)  # for open
    resolution: str = ""  # for resolve


def fingerprint(alert: Alert) -> str:
    """Alertmanager's fingerprint; for older senders without one, a hash of the labels."""
    if alert.fingerprint and re.fullmatch(r"[0-9a-f]+", alert.fingerprint):
        return alert.fingerprint
    canonical = "\x00".join(f"{k}\x01{v}" for k, v in sorted(alert.labels.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def incident_name(alert: Alert) -> str:
    """alert-<fingerprint>-<unix start>: one name per occurrence, the same on every repeat."""
    return f"alert-{fingerprint(alert)}-{int(alert.starts_at.timestamp())}"


def levels(labels: dict[str, str]) -> tuple[Level, Level]:
    """(impact, urgency): explicit `impact`/`urgency` labels win, then the severity."""
    impact, urgency = SEVERITIES.get(labels.get("severity", "").lower(), DEFAULT_LEVELS)
    values = {level.value for level in Level}
    if labels.get("impact", "").lower() in values:
        impact = Level(labels["impact"].lower())
    if labels.get("urgency", "").lower() in values:
        urgency = Level(labels["urgency"].lower())
    return impact, urgency


def _label_value(text: str) -> str:
    """`text` as a valid label value (63 characters of [A-Za-z0-9_.-], alphanumeric ends)."""
    return _LABEL_VALUE_BAD.sub("_", text)[:63].strip("_.-")


def _namespace(alert: Alert, routing: Routing) -> str:
    candidate = alert.labels.get(routing.namespace_label, "")
    return candidate if len(candidate) <= 63 and _NAME_RE.match(candidate) else ""


def _items(alert: Alert, routing: Routing) -> list[str]:
    raw = alert.labels.get(routing.item_label, "")
    return [i for i in (p.strip() for p in raw.split(",")) if _NAME_RE.match(i)][:128]


def _description(alert: Alert) -> str:
    lines = [alert.annotations.get("description", "").strip()]
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    lines.append(f"Alert labels: {labels}")
    if alert.generator_url:
        lines.append(f"Source: {alert.generator_url}")
    return "\n\n".join(line for line in lines if line)[:16384]


def action_for(alert: Alert, routing: Routing, *, resolve: bool) -> Action | None:
    """What one alert does: open (firing), resolve (resolved, if configured), or nothing.

    Alerts labelled `opsledger_incident: managed` are about incidents OpsLedger opens itself
    (its burn-rate alerts), and `opsledger_incident: none` say a state that is no incident (a
    change freeze, for kured's gating): nothing.
    """
    if alert.labels.get(MANAGED_LABEL) in ("managed", "none"):
        return None
    name = incident_name(alert)
    namespace = _namespace(alert, routing) or routing.default_namespace
    alertname = alert.labels.get("alertname", "alert")
    fp = fingerprint(alert)
    if alert.status == "resolved":
        if not resolve:
            return None
        ended = rfc3339(alert.ends_at) if alert.ends_at else "now"
        return Action(
            "resolve",
            namespace,
            name,
            fp,
            alertname,
            resolution=f"The alert {alertname} resolved at {ended} (Alertmanager).",
        )
    impact, urgency = levels(alert.labels)
    summary = alert.annotations.get("summary") or alert.annotations.get("title") or alertname
    spec: dict[str, Any] = {
        "title": f"{alertname}: {summary}"[:200] if summary != alertname else alertname[:200],
        "description": _description(alert),
        "impact": impact.value,
        "urgency": urgency.value,
        "origin": {"type": "alertmanager", "reference": fp},
    }
    service = alert.labels.get(routing.service_label, "")
    if service:
        spec["service"] = service[:253]
    items = _items(alert, routing)
    if items:
        spec["configurationItems"] = items
    labels = {FINGERPRINT_LABEL: fp, ALERTNAME_LABEL: _label_value(alertname) or "alert"}
    return Action("open", namespace, name, fp, alertname, spec=spec, labels=labels)


def actions(notification: Notification, routing: Routing, *, resolve: bool) -> list[Action]:
    """Every alert's action, in the order Alertmanager listed them."""
    found = (action_for(a, routing, resolve=resolve) for a in notification.alerts)
    return [a for a in found if a is not None]
