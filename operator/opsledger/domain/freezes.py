"""CronJobs of a frozen service are suspended for the freeze and resumed after it.

A freeze stops changes; a CronJob of the same service keeps running jobs (a batch import, a
migration) unless it is suspended too, as kube-freeze-operator does. The operator suspends the
CronJobs that a ConfigurationItem of the frozen service follows, marks them with a label and an
annotation saying which freeze, and resumes only those it suspended itself (a CronJob someone
suspended by hand stays suspended).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsledger.domain.times import parse_time, rfc3339

SUSPENDED_LABEL = "opsledger.io/suspended-for-freeze"
SUSPENDED_BY = "opsledger.io/suspended-for-freeze"  # annotation: until when, and why


@dataclass(frozen=True)
class Freeze:
    start: datetime
    end: datetime
    reason: str


def active_freeze(spec: Mapping[str, Any], now: datetime) -> Freeze | None:
    """The freeze of a ServiceLevel's spec in force at `now` (the one ending last), or None."""
    found: list[Freeze] = []
    for f in spec.get("freezes") or []:
        start, end = parse_time(f.get("start")), parse_time(f.get("end"))
        if start is not None and end is not None and start <= now < end:
            found.append(Freeze(start, end, str(f.get("reason") or "")))
    return max(found, key=lambda f: f.end) if found else None


def action(cronjob: Mapping[str, Any], freeze: Freeze | None) -> dict[str, Any] | None:
    """The merge patch that suspends or resumes `cronjob` for `freeze` (None: not frozen), or
    None when nothing is to be done."""
    metadata = cronjob.get("metadata") or {}
    ours = (metadata.get("labels") or {}).get(SUSPENDED_LABEL) == "true"
    suspended = bool((cronjob.get("spec") or {}).get("suspend"))
    if freeze is not None:
        note = f"until {rfc3339(freeze.end)}: {freeze.reason}"
        if ours and (metadata.get("annotations") or {}).get(SUSPENDED_BY) == note:
            return None
        if suspended and not ours:
            return None  # suspended by someone else: theirs to resume
        return {
            "metadata": {"labels": {SUSPENDED_LABEL: "true"}, "annotations": {SUSPENDED_BY: note}},
            "spec": {"suspend": True},
        }
    if ours:
        return {
            "metadata": {"labels": {SUSPENDED_LABEL: None}, "annotations": {SUSPENDED_BY: None}},
            "spec": {"suspend": False},
        }
    return None


def frozen_cronjobs(
    items: Iterable[Mapping[str, Any]],
    levels: Mapping[tuple[str, str], Mapping[str, Any]],
    now: datetime,
) -> dict[tuple[str, str], Freeze]:
    """(namespace, CronJob name) → the freeze in force for each CronJob an item of a frozen
    service follows."""
    found: dict[tuple[str, str], Freeze] = {}
    for item in items:
        metadata, spec = item.get("metadata") or {}, item.get("spec") or {}
        source = spec.get("source") or {}
        if source.get("kind") != "CronJob" or not spec.get("service"):
            continue
        namespace = str(metadata.get("namespace"))
        level = levels.get((namespace, str(spec["service"])))
        freeze = active_freeze(level, now) if level else None
        if freeze is not None:
            found[(namespace, str(source.get("name")))] = freeze
    return found
