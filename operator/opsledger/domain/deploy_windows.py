"""The change calendar, carried to the tools that deploy on their own: Argo CD and Flux.

An object opts in with the label `opsledger.io/calendar: "true"` and the annotation
`opsledger.io/calendar-from: <namespace>/<service>` (or `<service>`, in its own namespace) naming
the ServiceLevel whose calendar it follows. A Namespace with the same label and annotation opts
in every Flux Kustomization and HelmRelease in it (one labelled `opsledger.io/calendar: "false"`
stays out; one with its own annotation follows that).

- **Argo CD**: an AppProject's `spec.syncWindows` hold the calendar: each maintenance window an
  `allow` window, each blackout a `deny` window (the same cron, duration and zone; Argo CD reads
  cron as this module's dialect does), and each freeze or calendar event still to come within
  SYNC_HORIZON a `deny` window opening at its start (in UTC) for its length. Past ones are
  dropped, so such a window never recurs a year later. Windows the operator did not write (their
  description does not start with "opsledger:") are kept as they are.
- **Flux**: a Kustomization (or anything with `spec.suspend`) is suspended while the calendar
  holds changes (a freeze, a blackout, a calendar event, or outside the maintenance windows) and
  resumed afterwards, only when the operator suspended it itself (as for CronJobs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from opsledger.domain.freezes import Freeze, action
from opsledger.domain.windows import HORIZON, Decision, Hold, decide
from opsledger.models.servicelevel import ServiceLevelSpec

CALENDAR_LABEL = "opsledger.io/calendar"
CALENDAR_FROM = "opsledger.io/calendar-from"
MANAGED = "opsledger: "  # the description prefix of the sync windows the operator keeps
SYNC_HORIZON = timedelta(days=62)  # how far ahead one-off holds become deny windows


def calendar_of(
    obj: Mapping[str, Any], namespace: Mapping[str, Any] | None = None
) -> tuple[str, str] | None:
    """(namespace, service) an opted-in object follows, or None: its own annotation, else that
    of its opted-in `namespace` (a bare service is in the object's namespace either way)."""
    metadata = obj.get("metadata") or {}
    named = str((metadata.get("annotations") or {}).get(CALENDAR_FROM) or "").strip()
    if not named and namespace is not None:
        outer = (namespace.get("metadata") or {}).get("annotations") or {}
        named = str(outer.get(CALENDAR_FROM) or "").strip()
    if not named:
        return None
    namespace_name, _, service = named.rpartition("/")
    return (namespace_name or str(metadata.get("namespace") or "")), service


def follows_namespace(obj: Mapping[str, Any]) -> bool:
    """Whether an object in an opted-in namespace follows its calendar: unless it opts out with
    `opsledger.io/calendar: "false"`."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return str(labels.get(CALENDAR_LABEL, "")).lower() != "false"


def sync_windows(
    service: str, level: ServiceLevelSpec, holds: Sequence[Hold], now: datetime
) -> list[dict[str, Any]]:
    """The Argo CD sync windows that hold a ServiceLevel's calendar (and `holds`, its calendar
    events), as of `now`."""
    common = {"applications": ["*"], "namespaces": ["*"], "clusters": ["*"], "manualSync": False}
    found = [
        {
            "kind": "allow",
            "schedule": w.schedule,
            "duration": w.duration,
            "timeZone": w.time_zone,
            "description": f"{MANAGED}maintenance window of {service}",
            **common,
        }
        for w in level.maintenance_windows
    ]
    found += [
        {
            "kind": "deny",
            "schedule": b.schedule,
            "duration": b.duration,
            "timeZone": b.time_zone,
            "description": f"{MANAGED}blackout of {service}: {b.reason}",
            **common,
        }
        for b in level.blackouts
    ]
    one_off = [(f.start, f.end, f"freeze of {service}: {f.reason}") for f in level.freezes]
    one_off += [(h.start, h.end, h.what) for h in holds]
    for start, end, what in sorted(one_off):
        if end <= now or start >= now + SYNC_HORIZON:
            continue
        minutes = math.ceil((end - start).total_seconds() / 60)
        found.append(
            {
                "kind": "deny",
                "schedule": f"{start.minute} {start.hour} {start.day} {start.month} *",
                "duration": f"{minutes}m",
                "timeZone": "UTC",
                "description": f"{MANAGED}{what}"[:250],
                **common,
            }
        )
    return found


def merged_windows(
    current: Iterable[Mapping[str, Any]], wanted: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """The AppProject's windows with the operator's replaced by `wanted`: None when nothing
    changes."""
    current = list(current)
    theirs = [w for w in current if not str(w.get("description") or "").startswith(MANAGED)]
    merged = [dict(w) for w in theirs] + wanted
    ours = [w for w in current if str(w.get("description") or "").startswith(MANAGED)]
    return None if _same(ours, wanted) else merged


def _same(ours: list[Mapping[str, Any]], wanted: list[dict[str, Any]]) -> bool:
    def key(w: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(
            str(w.get(k)) for k in ("kind", "schedule", "duration", "timeZone", "description")
        )

    return sorted(map(key, ours)) == sorted(map(key, wanted))


def hold_decision(level: ServiceLevelSpec, holds: Sequence[Hold], now: datetime) -> Decision:
    """Whether the calendar lets a deployment happen now (as for a normal change, without a
    schedule of its own)."""
    return decide(
        now,
        windows=level.maintenance_windows,
        freezes=level.freezes,
        blackouts=level.blackouts,
        holds=holds,
    )


def suspension(obj: Mapping[str, Any], decision: Decision, now: datetime) -> dict[str, Any] | None:
    """The merge patch that suspends a Flux object while `decision` holds deployments, or
    resumes it (only when the operator suspended it); None when nothing is to be done."""
    if decision.allowed:
        return action(obj, None)
    until = decision.next.start if decision.next is not None else now + HORIZON
    reason = decision.reason.split("; next eligible window")[0]
    return action(obj, Freeze(now, until, f"{decision.rule}: {reason}"))
