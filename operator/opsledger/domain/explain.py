"""`kubectl itsm explain` and `kubectl itsm status`: one screen saying why a change waits, and
how the services stand. Read from the objects' own status: what the operator decided and said,
not a second opinion of it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# A change's start gates, in the order the operator checks them (domain/change_gates.py), and
# the condition that reports each.
GATES = (
    ("approval", "Approved"),
    ("window", "WindowOpen"),
    ("conflicts", "Conflict"),
    ("health", "HealthGate"),
)
# Conditions whose True means "in the way" (the others: True means "fine").
TRUE_BLOCKS = ("Conflict",)
WAITING = ("PendingApproval", "Approved", "Scheduled")


@dataclass(frozen=True)
class Line:
    gate: str
    verdict: str  # ok | waiting | blocked | unknown
    message: str


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in (obj.get("status") or {}).get("conditions") or []}


def explain(change: Mapping[str, Any], level: Mapping[str, Any] | None) -> list[Line]:
    """Why a Change stands where it does: its phase, each start gate, the error budget."""
    status = change.get("status") or {}
    spec = change.get("spec") or {}
    phase = str(status.get("phase") or "not yet reconciled")
    conditions = _conditions(change)
    lines = [Line("phase", "ok" if phase not in WAITING else "waiting", _phase_text(phase, status))]
    for gate, kind in GATES:
        c = conditions.get(kind)
        if c is None:
            lines.append(Line(gate, "unknown", "not judged yet"))
            continue
        fine = (c.get("status") == "True") != (kind in TRUE_BLOCKS)
        verdict = "ok" if fine else ("blocked" if phase in WAITING else "waiting")
        lines.append(Line(gate, verdict, f"{c.get('reason')}: {c.get('message')}"))
    lines.append(_budget(spec, level))
    window = status.get("window") or {}
    if window.get("start"):
        lines.append(
            Line("next window", "ok", f"{window.get('start')} to {window.get('end') or '?'}")
        )
    return lines


def _phase_text(phase: str, status: Mapping[str, Any]) -> str:
    transitions = status.get("transitions") or []
    if transitions:
        last = transitions[-1]
        reason = f": {last.get('reason')}" if last.get("reason") else ""
        return f"{phase} since {last.get('at')}{reason}"
    return phase


def _budget(spec: Mapping[str, Any], level: Mapping[str, Any] | None) -> Line:
    if level is None:
        return Line("budget", "unknown", f"no ServiceLevel for service {spec.get('service')}")
    c = _conditions(level).get("BudgetExhausted")
    if c is None:
        return Line("budget", "unknown", "the ServiceLevel is not measured yet")
    if c.get("status") == "True":
        held = spec.get("type") == "normal"
        return Line(
            "budget",
            "blocked" if held else "ok",
            f"{c.get('message')}" + ("" if held else " (does not hold this type of change)"),
        )
    return Line("budget", "ok", str(c.get("message")))


@dataclass(frozen=True)
class ServiceStatus:
    namespace: str
    service: str
    objectives: list[tuple[str, float | None, float | None]]  # name, SLI %, budget left
    open_incidents: dict[str, int]  # priority → count
    changes_running: list[str]


def services(
    levels: Iterable[Mapping[str, Any]],
    incidents: Iterable[Mapping[str, Any]],
    changes: Iterable[Mapping[str, Any]],
) -> list[ServiceStatus]:
    """The services, each with its budgets, open incidents by priority and running changes."""
    incidents, changes = list(incidents), list(changes)
    rows = []
    for level in levels:
        namespace = str((level.get("metadata") or {}).get("namespace") or "")
        service = str((level.get("spec") or {}).get("service") or "")

        def here(obj: Mapping[str, Any], ns: str = namespace, svc: str = service) -> bool:
            meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
            return meta.get("namespace") == ns and spec.get("service") == svc

        counts: dict[str, int] = {}
        for i in incidents:
            if here(i) and (i.get("spec") or {}).get("state") not in ("Resolved", "Closed"):
                priority = str((i.get("status") or {}).get("priority") or "unassessed")
                counts[priority] = counts.get(priority, 0) + 1
        measured = {o.get("name"): o for o in (level.get("status") or {}).get("objectives") or []}
        rows.append(
            ServiceStatus(
                namespace,
                service,
                [
                    (
                        str(o.get("name")),
                        (measured.get(o.get("name")) or {}).get("sli"),
                        (measured.get(o.get("name")) or {}).get("errorBudgetRemaining"),
                    )
                    for o in (level.get("spec") or {}).get("objectives") or []
                ],
                dict(sorted(counts.items())),
                sorted(
                    str((c.get("metadata") or {}).get("name"))
                    for c in changes
                    if here(c)
                    and (c.get("status") or {}).get("phase") in ("InProgress", "Verifying")
                ),
            )
        )
    return sorted(rows, key=lambda r: (r.namespace, r.service))
