"""Change management in the domain: what is approved, how health is judged, what risk is run.

Approval is a fact about the CMDB repository, not about any forge: a change is approved when the
protected branch holds its record with the hash of exactly the spec that is to run. Merge, squash
and rebase merges all put the record there, so all of them count; the approver is whoever
committed the record onto the protected branch.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import yaml

from opsledger.domain.conditions import find, parse_conditions
from opsledger.domain.impact import ImpactGraph
from opsledger.domain.promql import embedded
from opsledger.domain.windows import Decision, Hold, decide
from opsledger.models.change import ChangePhase, ChangeSpec, ChangeType, HealthCheck
from opsledger.models.common import ConditionStatus
from opsledger.models.servicelevel import ServiceLevelSpec

# Fields people set to steer a change (finish a permit, cancel); they are not what is approved.
STEERING_FIELDS = frozenset({"done", "cancelled"})

ACTIVE = frozenset({ChangePhase.IN_PROGRESS, ChangePhase.VERIFYING})
FINAL = frozenset(
    {
        ChangePhase.COMPLETED,
        ChangePhase.REJECTED,
        ChangePhase.FAILED,
        ChangePhase.ROLLED_BACK,
        ChangePhase.CANCELLED,
    }
)
CHECK_LABEL = "opsledger_check"
RECENT = timedelta(days=30)  # how far back failed changes raise the risk


def spec_hash(spec: ChangeSpec) -> str:
    """sha256 over the canonical JSON of what is approved (steering fields left out)."""
    data = spec.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude=set(STEERING_FIELDS)
    )
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def change_window(
    at: datetime,
    spec: ChangeSpec,
    level: ServiceLevelSpec,
    others: Sequence[tuple[str, ServiceLevelSpec]] = (),
    calendar: Sequence[Hold] = (),
) -> Decision:
    """May this change start at `at` under its service's change calendar (windows, blackouts,
    freezes; its approved freeze exception), narrowed by its own schedule (emergency changes skip
    the calendar), and the window it runs in or waits for.

    `others` are the ServiceLevels of the other services its target items belong to: their
    freezes and blackouts hold the change too (naming a service with an open window does not
    step around the targets' freeze); their windows do not narrow it further. `calendar` are the
    events of the shared calendars all of these services name."""
    schedule = spec.schedule
    holds = [
        Hold(_utc(f.start), _utc(f.end), "freeze", f"service {service}: {f.reason}")
        for service, other in others
        if service != spec.service
        for f in other.freezes
    ]
    blackouts = [*level.blackouts]
    blackouts += [
        b.model_copy(update={"reason": f"service {service}: {b.reason}"})
        for service, other in others
        if service != spec.service
        for b in other.blackouts
    ]
    return decide(
        at,
        windows=level.maintenance_windows,
        freezes=level.freezes,
        blackouts=blackouts,
        holds=[*holds, *calendar],
        exception=spec.freeze_exception,
        not_before=schedule.not_before if schedule else None,
        not_after=schedule.not_after if schedule else None,
        emergency=spec.type == ChangeType.EMERGENCY,
    )


OTHERS = "otherServiceLevels"  # the key a change's level mapping carries its targets' levels on
CALENDAR = "calendarHolds"  # ... and the events of the shared calendars of all those services


def window_for(at: datetime, spec: ChangeSpec, level: Mapping[str, Any]) -> Decision:
    """change_window for a change's level mapping (the ServiceLevel's spec and status, with
    what the service layer attached: the targets' levels and the calendars' events); a
    ValidationError when the ServiceLevel is invalid."""
    return change_window(
        at,
        spec,
        ServiceLevelSpec.model_validate(level.get("spec") or {}),
        other_levels(level),
        level.get(CALENDAR) or (),
    )


def other_levels(level: Mapping[str, Any] | None) -> list[tuple[str, ServiceLevelSpec]]:
    """The target services' ServiceLevels a change's level mapping carries (invalid ones left
    out: their own status says why)."""
    found = []
    for service, other in ((level or {}).get(OTHERS) or {}).items():
        try:
            found.append((str(service), ServiceLevelSpec.model_validate(other.get("spec") or {})))
        except ValueError:
            continue
    return found


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def proposal_branch(cluster: str, namespace: str, name: str) -> str:
    return f"changes/{cluster}/{namespace}/{name}"


def template_path(template: str) -> str:
    """Where a standard change's pre-approved template lives in the CMDB repository."""
    return f"standard-changes/{template}.yaml"


@dataclass(frozen=True)
class RecordVersion:
    """One commit on the protected branch's first-parent line that touched a record."""

    sha: str
    committer: str
    committed_at: datetime
    content: str | None  # the record as of that commit; None where it was deleted


def recorded_binding(content: str | None) -> tuple[str | None, str | None]:
    """The specHash and the Change uid a change record holds (None where it holds none)."""
    if not content:
        return None, None
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    value = data.get("specHash")
    metadata = data.get("metadata")
    uid = metadata.get("uid") if isinstance(metadata, dict) else None
    return (value if isinstance(value, str) else None), (uid if isinstance(uid, str) else None)


def recorded_hash(content: str | None) -> str | None:
    """The specHash a change record holds, or None (no record, unparsable, no hash)."""
    return recorded_binding(content)[0]


def find_approval(
    history: Sequence[RecordVersion], wanted: str, uid: str | None = None
) -> RecordVersion | None:
    """The commit that brought a record with hash `wanted` (and, given `uid`, of that very
    Change object) onto the protected branch.

    `history` is oldest first. The first version holding the binding is the approval; later
    commits that merely rewrite the record (the operator recording progress) do not move it.
    Returns None unless the branch's current version still holds it. A record of another
    object of the same name (deleted and created again) approves nothing.
    """

    def binds(content: str | None) -> bool:
        spec_hash, bound = recorded_binding(content)
        return spec_hash == wanted and (uid is None or bound == uid)

    if not history or not binds(history[-1].content):
        return None
    return next(v for v in history if binds(v.content))


# -- health ------------------------------------------------------------------------------


class Health(StrEnum):
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    UNKNOWN = "Unknown"


@dataclass
class Verdict:
    """The outcome of a health gate: healthy only when every part answered and passed."""

    health: Health = Health.HEALTHY
    reasons: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.reasons.append(reason)
        if self.health is Health.HEALTHY:
            self.health = Health.UNHEALTHY

    def unknown(self, reason: str) -> None:
        self.reasons.append(reason)
        self.health = Health.UNKNOWN

    @property
    def message(self) -> str:
        if not self.reasons:
            return "all health checks pass"
        return "; ".join(self.reasons)


def batched_checks_query(checks: Sequence[HealthCheck]) -> str:
    """One PromQL query answering every check, each series labelled with its check's index."""
    parts = [
        f'label_replace({embedded(c.query)}, "{CHECK_LABEL}", "{i}", "", "")'
        for i, c in enumerate(checks)
    ]
    return " or ".join(parts)


def split_batched(
    checks: Sequence[HealthCheck], samples: Iterable[Mapping[str, Any]]
) -> list[list[Mapping[str, Any]]]:
    """The batched answer split back per check (by the index label)."""
    per_check: list[list[Mapping[str, Any]]] = [[] for _ in checks]
    for sample in samples:
        index = (sample.get("metric") or {}).get(CHECK_LABEL)
        if index is not None and index.isdigit() and int(index) < len(checks):
            per_check[int(index)].append(sample)
    return per_check


def judge_check(check: HealthCheck, samples: Sequence[Mapping[str, Any]], verdict: Verdict) -> None:
    """Add one check's outcome: every series must pass; no series (or NaN) is unknown."""
    values = [_value(s) for s in samples]
    if not values:
        verdict.unknown(f"{check.name}: the query returned no data")
        return
    if any(math.isnan(v) for v in values):
        verdict.unknown(f"{check.name}: the query returned NaN")
        return
    if check.below is not None:
        worst = max(values)
        if not worst < check.below:
            verdict.fail(f"{check.name} is {worst:g}, must be below {check.below:g}")
    elif check.above is not None:
        worst = min(values)
        if not worst > check.above:
            verdict.fail(f"{check.name} is {worst:g}, must be above {check.above:g}")


def judge_budget(
    level_status: Mapping[str, Any], level: ServiceLevelSpec, verdict: Verdict
) -> None:
    """An exhausted error budget holds normal changes; an unmeasured one is unknown health."""
    policy = level.error_budget_policy
    if not level.objectives or (policy is not None and not policy.block_normal_changes):
        return
    conditions = parse_conditions(level_status.get("conditions"))
    measured = find(conditions, "Measured")
    exhausted = find(conditions, "BudgetExhausted")
    if measured is None or measured.status != ConditionStatus.TRUE:
        verdict.unknown(
            "the service's error budget is not measured yet"
            + (f" ({measured.message})" if measured else "")
        )
    elif exhausted is not None and exhausted.status == ConditionStatus.TRUE:
        verdict.fail(f"error budget exhausted: {exhausted.message}")


def judge_targets(items: Mapping[str, Mapping[str, Any] | None], verdict: Verdict) -> None:
    """The target items' measured health (status.health, the Healthy condition) in the gate.

    Down holds the change. Unknown because Prometheus does not answer makes the gate unknown
    (the change waits: never start on unknown health). An item without any health signal
    (Unknown, NoData), one not measured yet, or a missing one does not hold it: no data for an
    optional signal must not block forever, and the change's own pre-checks and the critical
    alert check still apply. Degraded does not hold it either: a change is often the fix.
    """
    for name in sorted(items):
        status = items[name] or {}
        condition = find(parse_conditions(status.get("conditions")), "Healthy")
        detail = f": {condition.message}" if condition is not None else ""
        if status.get("health") == "Down":
            verdict.fail(f"target {name} is Down{detail}")
        elif (
            status.get("health") == "Unknown"
            and condition is not None
            and condition.reason == "PrometheusUnavailable"
        ):
            verdict.unknown(f"health of target {name} is unknown{detail}")


def critical_alerts_query(service: str, namespace: str) -> str:
    """The critical alerts firing for `service` in `namespace`: another team's service of the
    same name, in its own namespace, does not hold this one's changes."""

    def quoted(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"')

    return (
        f'ALERTS{{alertstate="firing",severity="critical",service="{quoted(service)}",'
        f'namespace="{quoted(namespace)}"}}'
    )


def judge_alerts(samples: Sequence[Mapping[str, Any]], verdict: Verdict) -> None:
    """An empty answer is healthy: Prometheus answered and nothing critical is firing."""
    names = sorted({str((s.get("metric") or {}).get("alertname", "?")) for s in samples})
    if names:
        verdict.fail("critical alert firing: " + ", ".join(names))


def _value(sample: Mapping[str, Any]) -> float:
    try:
        return float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return math.nan


# -- conflicts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """An open change as the conflict check sees it: which items, and when (None: unbounded)."""

    name: str
    targets: frozenset[str]  # item ids, "namespace/name"
    start: datetime | None = None
    end: datetime | None = None
    active: bool = False  # InProgress or Verifying now


def overlap(a: Planned, b: Planned) -> bool:
    """Whether two changes' times overlap; an unknown bound reaches as far as it can."""
    a_before_b = a.end is not None and b.start is not None and a.end <= b.start
    b_before_a = b.end is not None and a.start is not None and b.end <= a.start
    return not (a_before_b or b_before_a)


def conflicts(me: Planned, others: Iterable[Planned], graph: ImpactGraph) -> list[Planned]:
    """Open changes overlapping `me` in time on the same items or items depending on each
    other (either way round), sorted by name."""

    def reach(targets: frozenset[str]) -> set[str]:
        found = set(targets)
        for item in targets:
            found |= graph.dependents(item)
        return found

    mine = reach(me.targets)
    found = []
    for other in others:
        if other.name == me.name or not overlap(me, other):
            continue
        if mine & other.targets or reach(other.targets) & me.targets:
            found.append(other)
    return sorted(found, key=lambda p: p.name)


def recent_failures(
    failures: Iterable[tuple[frozenset[str], datetime]], targets: frozenset[str], now: datetime
) -> int:
    """Failed or rolled-back changes on any of `targets` that ended in the last 30 days."""
    since = now - RECENT
    return sum(1 for items, ended in failures if ended >= since and items & targets)


# -- risk --------------------------------------------------------------------------------

CRITICALITY_WEIGHT = {"low": 0, "medium": 1, "high": 2, "critical": 3}


@dataclass(frozen=True)
class Risk:
    score: int
    level: str  # low | medium | high
    factors: tuple[str, ...]

    @property
    def summary(self) -> str:
        return f"{self.level} (score {self.score}: {', '.join(self.factors) or 'no factors'})"


def assess_risk(
    *,
    criticalities: Iterable[str],
    dependents: int,
    recent_failures: int,
    burn_rate: float | None,
    has_plan: bool,
) -> Risk:
    """A risk score from blast radius, criticality, failed changes and the current burn rate."""
    factors = []
    score = 0
    top = max((CRITICALITY_WEIGHT.get(c, 1) for c in criticalities), default=0)
    if top:
        score += top * 2
        factors.append(f"criticality {next(k for k, v in CRITICALITY_WEIGHT.items() if v == top)}")
    if dependents:
        score += min(dependents, 10)
        factors.append(f"{dependents} dependent item(s)")
    if recent_failures:
        score += 3 * recent_failures
        factors.append(f"{recent_failures} failed change(s) on these items in 30 days")
    if burn_rate is not None and burn_rate > 1:
        score += 3
        factors.append(f"error budget burning at {burn_rate:.1f}x")
    if not has_plan:
        score += 1
        factors.append("manual work (permit)")
    level = "high" if score >= 8 else "medium" if score >= 4 else "low"
    return Risk(score, level, tuple(factors))


# -- carrying out ------------------------------------------------------------------------

STEP_ANNOTATION = "opsledger.io/change-step"  # "<change uid>/<step index>" on each patched target


def stamped(patch_type: str, patch: Any, stamp: str, current: Mapping[str, Any] | None) -> Any:
    """The plan step's patch plus its stamp, in the same request (so both happen or neither).

    A JSON patch also tests the target's resourceVersion, so it applies to the object as read.
    """
    if patch_type == "json":
        ops = list(patch or [])
        meta = (current or {}).get("metadata") or {}
        if current is not None:
            ops.insert(
                0,
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": meta["resourceVersion"],
                },
            )
        key = STEP_ANNOTATION.replace("~", "~0").replace("/", "~1")
        if meta.get("annotations"):
            ops.append({"op": "add", "path": f"/metadata/annotations/{key}", "value": stamp})
        else:
            ops.append(
                {"op": "add", "path": "/metadata/annotations", "value": {STEP_ANNOTATION: stamp}}
            )
        return ops
    document = dict(patch or {})
    metadata = dict(document.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), STEP_ANNOTATION: stamp}
    document["metadata"] = metadata
    return document
