"""Correlating incidents: recurring ones make a problem, recent changes are suspected causes.

Problem management (ITIL): when `threshold` incidents on the same configuration item (or, for
incidents that name no item, the same service) open within `period` of one another, they share an
underlying cause worth its own record. The problem's known error is the latest root cause people
gave when resolving one of them, and that incident's resolution is the workaround.

A change is a suspected cause of an incident when it completed on one of the incident's items, or
on something they depend on, at most `window` before the incident opened.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class IncidentFact:
    """What correlation needs to know of one incident."""

    name: str
    opened_at: datetime
    items: tuple[str, ...] = ()
    service: str | None = None
    state: str = "New"
    root_cause: str | None = None
    resolution: str | None = None
    resolved_at: datetime | None = None
    problem: str | None = None  # the problem its status names already


@dataclass(frozen=True)
class Problem:
    """Recurring incidents with one subject (a configuration item or a service)."""

    name: str  # ci-<item> or service-<service>
    subject_kind: str  # ConfigurationItem | Service
    subject: str
    incidents: tuple[IncidentFact, ...]
    detected_at: datetime  # when the threshold-th incident within the period opened
    known_error: str | None
    workaround: str | None

    @property
    def state(self) -> str:
        """Open until a root cause is known; then a Known Error (ITIL's term)."""
        return "KnownError" if self.known_error else "Open"


def _recurs(opened: Sequence[datetime], threshold: int, period: timedelta) -> datetime | None:
    """The first moment `threshold` of the (sorted) openings fall within `period`, if any."""
    for i in range(threshold - 1, len(opened)):
        if opened[i] - opened[i - threshold + 1] <= period:
            return opened[i]
    return None


def find_problems(
    incidents: Iterable[IncidentFact], *, threshold: int, period: timedelta
) -> list[Problem]:
    """Every problem the incidents show, items first, in name order."""
    by_item: dict[str, list[IncidentFact]] = defaultdict(list)
    by_service: dict[str, list[IncidentFact]] = defaultdict(list)
    for incident in incidents:
        for item in dict.fromkeys(incident.items):
            by_item[item].append(incident)
        if not incident.items and incident.service:
            by_service[incident.service].append(incident)
    found = []
    for kind, prefix, groups in (
        ("ConfigurationItem", "ci", by_item),
        ("Service", "service", by_service),
    ):
        for subject, members in sorted(groups.items()):
            members.sort(key=lambda f: (f.opened_at, f.name))
            detected = _recurs([m.opened_at for m in members], threshold, period)
            if detected is None:
                continue
            causes = [m for m in members if m.root_cause]
            latest = max(causes, key=lambda m: m.resolved_at or m.opened_at) if causes else None
            found.append(
                Problem(
                    name=f"{prefix}-{subject}"[:253],
                    subject_kind=kind,
                    subject=subject,
                    incidents=tuple(members),
                    detected_at=detected,
                    known_error=latest.root_cause if latest else None,
                    workaround=latest.resolution if latest else None,
                )
            )
    return found


def problem_of(name: str, problems: Iterable[Problem]) -> Problem | None:
    """The problem incident `name` belongs to (an item's before a service's)."""
    return next((p for p in problems if any(i.name == name for i in p.incidents)), None)


@dataclass(frozen=True)
class CompletedChange:
    name: str
    targets: tuple[str, ...]
    finished_at: datetime


def suspected_cause(
    items: Iterable[str],
    opened_at: datetime,
    changes: Iterable[CompletedChange],
    *,
    window: timedelta,
    dependents: Callable[[str], set[str]],
) -> str | None:
    """The latest change that completed within `window` before `opened_at` on one of `items`
    or on something they depend on (`dependents(x)`: everything that depends on x)."""
    affected = set(items)
    if not affected:
        return None
    suspects = [
        c
        for c in changes
        if opened_at - window <= c.finished_at <= opened_at
        and any(t in affected or affected & dependents(t) for t in c.targets)
    ]
    if not suspects:
        return None
    return max(suspects, key=lambda c: (c.finished_at, c.name)).name
