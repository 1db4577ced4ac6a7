"""The status page: services, incidents and planned work in the shape of Atlassian Statuspage's
`/api/v2/summary.json`, so existing status widgets and monitors can read OpsLedger's.

- **Components** are the services (one per ServiceLevel). A component's status is the worst of:
  an open P1 incident → `major_outage`; P2 → `partial_outage`; P3 or an exhausted error budget
  → `degraded_performance`; a change in progress → `under_maintenance`; else `operational`.
- **Incidents** are the open ones: New → `investigating`, Acknowledged → `identified`,
  InProgress → `monitoring`; impact from priority (P1 critical, P2 major, P3 minor, else none).
- **Scheduled maintenances** are the changes scheduled or running: `scheduled`, `in_progress`,
  `verifying`, from the change's window.
- **Status** is the worst open incident's impact (`none` … `critical`) with Statuspage's words.

Only what a status page shows leaves: service names, incident titles, change summaries and
times; no descriptions, items, people or namespaces' other contents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from opsledger.domain.times import rfc3339

COMPONENT_ORDER = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)
BY_PRIORITY = {"P1": "major_outage", "P2": "partial_outage", "P3": "degraded_performance"}
IMPACT = {"P1": "critical", "P2": "major", "P3": "minor"}
IMPACT_ORDER = ("none", "minor", "major", "critical")
INDICATOR_TEXT = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
}
INCIDENT_STATUS = {
    "New": "investigating",
    "Acknowledged": "identified",
    "InProgress": "monitoring",
}
MAINTENANCE_STATUS = {
    "Scheduled": "scheduled",
    "InProgress": "in_progress",
    "Verifying": "verifying",
}


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return str(_meta(obj).get("namespace") or ""), str((obj.get("spec") or {}).get("service") or "")


def _id(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("uid") or f"{_meta(obj).get('namespace')}/{_meta(obj).get('name')}")


def _exhausted(level: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "BudgetExhausted" and c.get("status") == "True"
        for c in (level.get("status") or {}).get("conditions") or []
    )


def summary(
    *,
    name: str,
    url: str,
    levels: Iterable[Mapping[str, Any]],
    incidents: Iterable[Mapping[str, Any]],
    changes: Iterable[Mapping[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The Statuspage summary of the cluster's services as of `now`."""
    open_incidents = [i for i in incidents if (i.get("spec") or {}).get("state") in INCIDENT_STATUS]
    planned = [c for c in changes if (c.get("status") or {}).get("phase") in MAINTENANCE_STATUS]
    stamp = rfc3339(now)
    levels = list(levels)
    components = []
    ids = {_key(level): _id(level) for level in levels}
    for position, level in enumerate(sorted(levels, key=_key), start=1):
        key = _key(level)
        status = "degraded_performance" if _exhausted(level) else "operational"
        for i in open_incidents:
            if _key(i) == key:
                status = _worse(status, BY_PRIORITY.get(_priority(i), "operational"))
        if any(
            _key(c) == key and (c.get("status") or {}).get("phase") in ("InProgress", "Verifying")
            for c in planned
        ):
            status = _worse(status, "under_maintenance")
        components.append(
            {
                "id": ids[key],
                "name": key[1],
                "status": status,
                "created_at": _meta(level).get("creationTimestamp"),
                "updated_at": stamp,
                "position": position,
                "description": (level.get("spec") or {}).get("description"),
                "showcase": True,
                "start_date": None,
                "group_id": None,
                "page_id": name,
                "group": False,
                "only_show_if_degraded": False,
            }
        )
    incident_items = [_incident(i, ids, name) for i in open_incidents]
    worst = max((x["impact"] for x in incident_items), key=IMPACT_ORDER.index, default="none")
    return {
        "page": {
            "id": name,
            "name": name,
            "url": url,
            "time_zone": "Etc/UTC",
            "updated_at": stamp,
        },
        "components": components,
        "incidents": sorted(incident_items, key=lambda x: str(x["created_at"]), reverse=True),
        "scheduled_maintenances": [_maintenance(c, ids, name) for c in planned],
        "status": {"indicator": worst, "description": INDICATOR_TEXT[worst]},
    }


def _worse(a: str, b: str) -> str:
    return max(a, b, key=COMPONENT_ORDER.index)


def _priority(incident: Mapping[str, Any]) -> str:
    return str((incident.get("status") or {}).get("priority") or "")


def _affected(obj: Mapping[str, Any], ids: Mapping[tuple[str, str], str]) -> list[dict[str, str]]:
    key = _key(obj)
    return [{"id": ids[key], "name": key[1]}] if key in ids else []


def _incident(
    incident: Mapping[str, Any], ids: Mapping[tuple[str, str], str], page: str
) -> dict[str, Any]:
    spec, status = incident.get("spec") or {}, incident.get("status") or {}
    created = status.get("openedAt") or _meta(incident).get("creationTimestamp")
    state = INCIDENT_STATUS[str(spec.get("state"))]
    return {
        "id": _id(incident),
        "name": spec.get("title"),
        "status": state,
        "created_at": created,
        "updated_at": status.get("acknowledgedAt") or created,
        "monitoring_at": None,
        "resolved_at": None,
        "impact": IMPACT.get(_priority(incident), "none"),
        "shortlink": None,
        "started_at": created,
        "page_id": page,
        "incident_updates": [
            {
                "id": f"{_id(incident)}-{n}",
                "status": state,
                "body": str(t.get("event")),
                "created_at": t.get("at"),
                "updated_at": t.get("at"),
                "display_at": t.get("at"),
                "incident_id": _id(incident),
            }
            for n, t in enumerate(status.get("timeline") or [])
        ][::-1],
        "components": _affected(incident, ids),
    }


def _maintenance(
    change: Mapping[str, Any], ids: Mapping[tuple[str, str], str], page: str
) -> dict[str, Any]:
    spec, status = change.get("spec") or {}, change.get("status") or {}
    window = status.get("window") or {}
    return {
        "id": _id(change),
        "name": spec.get("summary"),
        "status": MAINTENANCE_STATUS[str(status.get("phase"))],
        "created_at": _meta(change).get("creationTimestamp"),
        "updated_at": _meta(change).get("creationTimestamp"),
        "monitoring_at": None,
        "resolved_at": None,
        "impact": "maintenance",
        "shortlink": None,
        "started_at": (status.get("execution") or {}).get("startedAt"),
        "page_id": page,
        "incident_updates": [],
        "components": _affected(change, ids),
        "scheduled_for": window.get("start"),
        "scheduled_until": window.get("end"),
    }
