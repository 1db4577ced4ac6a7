"""ServiceLevel evaluation: every objective of every ServiceLevel measured against Prometheus
in few batched queries, Measured and BudgetExhausted, and an Incident per burning objective."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from opsledger.adapters.prometheus import (
    Prometheus,
    PrometheusQueryError,
    PrometheusUnavailableError,
)
from opsledger.domain.budget_exclusions import (
    Exclusion,
    Interval,
    exclusion_message,
    intervals,
    merge,
    observe,
)
from opsledger.domain.conditions import summarize
from opsledger.domain.outcome import ConditionUpdate, Event
from opsledger.domain.slo import (
    Evaluation,
    batched_query,
    burn_incident,
    burn_incident_name,
    escalates,
    evaluate,
    exhausted,
    seconds,
    severity_of,
    split_result,
)
from opsledger.domain.times import rfc3339
from opsledger.models import CHANGE, INCIDENT, SERVICE_LEVEL
from opsledger.models.common import ConditionStatus
from opsledger.models.incident import RESOLVED_STATES, OriginType
from opsledger.models.servicelevel import ErrorBudgetPolicy, ServiceLevelSpec
from opsledger.services import servicelevel_rules
from opsledger.services.context import Context
from opsledger.services.errors import RetryLaterError, UnavailableError
from opsledger.services.incident_factory import open_incident
from opsledger.services.status import write_status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceLevelRef:
    """A ServiceLevel to evaluate: where it lives and what it promises."""

    namespace: str
    name: str
    spec: ServiceLevelSpec
    # Planned work left out of its objectives' budgets (domain.budget_exclusions).
    exclusions: tuple[Exclusion, ...] = ()

    def key(self, objective: str) -> str:
        return f"{self.namespace}/{self.name}/{objective}"


# Objectives per batched query: a query stays a few hundred kilobytes (Prometheus parses at
# most 10 MB of form), and one query's time grows faster than its parts.
BATCH = 250


def evaluate_service_levels(
    prometheus: Prometheus, service_levels: Iterable[ServiceLevelRef], at: datetime | None = None
) -> dict[tuple[str, str], list[Evaluation]]:
    """Every objective of every ServiceLevel, from one batched query per BATCH objectives.

    Returns {(namespace, name): [evaluation per objective, in spec order]}. An objective whose
    query Prometheus refuses has no figures and says why (`error`); the others are measured.
    Raises PrometheusUnavailableError when Prometheus does not answer.
    """
    refs = list(service_levels)
    objectives = {
        ref.key(o.name): (o.sli.events.error_query, o.sli.events.total_query, o.window)
        for ref in refs
        for o in ref.spec.objectives
    }
    left_out = {
        ref.key(o.name): spans
        for ref in refs
        for o in ref.spec.objectives
        if (spans := intervals(ref.exclusions, o.name))
    }
    keys = list(objectives)
    ratios: dict[str, dict[str, float | None]] = {}
    errors: dict[str, str] = {}
    for start in range(0, len(keys), BATCH):
        chunk = {k: objectives[k] for k in keys[start : start + BATCH]}
        measured, refused = _measure(prometheus, chunk, left_out, at)
        ratios.update(measured)
        errors.update(refused)
    return {
        (ref.namespace, ref.name): [
            replace(
                evaluate(o.name, o.objective, o.window, ratios.get(ref.key(o.name), {})),
                error=errors.get(ref.key(o.name)),
            )
            for o in ref.spec.objectives
        ]
        for ref in refs
    }


def measure(
    ctx: Context, service_levels: Iterable[ServiceLevelRef], at: datetime | None = None
) -> dict[tuple[str, str], list[Evaluation]]:
    """evaluate_service_levels with the Context's Prometheus (`opsledger slo evaluate`).

    Raises UnavailableError when Prometheus does not answer."""
    assert ctx.prometheus is not None
    try:
        return evaluate_service_levels(ctx.prometheus, service_levels, at)
    except PrometheusUnavailableError as exc:
        raise UnavailableError(str(exc)) from exc


def _measure(
    prometheus: Prometheus,
    objectives: Mapping[str, tuple[str, str, str]],
    left_out: Mapping[str, list[Interval]],
    at: datetime | None,
) -> tuple[dict[str, dict[str, float | None]], dict[str, str]]:
    """The objectives' error ratios from one query; when Prometheus refuses it, objective by
    objective, so one wrong SLI query leaves only its own objective unmeasured."""
    moment = None if at is None else at.timestamp()
    try:
        query = batched_query(objectives, left_out, moment)
        return split_result(prometheus.instant(query, at)), {}
    except PrometheusQueryError:
        pass
    ratios: dict[str, dict[str, float | None]] = {}
    errors: dict[str, str] = {}
    for key, objective in objectives.items():
        try:
            query = batched_query({key: objective}, left_out, moment)
            ratios.update(split_result(prometheus.instant(query, at)))
        except PrometheusQueryError as exc:
            errors[key] = str(exc)
    return ratios, errors


MEASURED = "Measured"
BUDGET_EXHAUSTED = "BudgetExhausted"


def _objective_status(e: Evaluation, at: str) -> dict[str, Any]:
    return {
        "name": e.name,
        **({"sli": e.sli} if e.sli is not None else {}),
        **(
            {"errorBudgetRemaining": e.error_budget_remaining}
            if e.error_budget_remaining is not None
            else {}
        ),
        "burnRates": {w: v for w, v in e.burn_rates.items() if v is not None},
        "alerts": e.alerts,
        "evaluatedAt": at,
    }


def _status_after(
    ctx: Context,
    obj: Mapping[str, Any],
    updates: list[tuple[str, ConditionStatus, str, str]],
    objectives: list[dict[str, Any]] | None,
    exclusions: Iterable[Exclusion] = (),
) -> tuple[dict[str, Any], list[Event]]:
    """The status patch and the Events for conditions that flip."""
    summary = summarize(
        SERVICE_LEVEL.kind,
        (obj.get("status") or {}).get("conditions"),
        [ConditionUpdate(*u) for u in updates],
        now=ctx.clock(),
        generation=(obj.get("metadata") or {}).get("generation"),
    )
    patch: dict[str, Any] = {
        "conditions": summary.wire(),
        "budgetExclusions": [e.as_status() for e in exclusions],
    }
    if objectives is not None:
        patch["objectives"] = objectives
    return patch, summary.events


async def evaluate_once(ctx: Context) -> int:
    """Evaluate every ServiceLevel with one query and write each one's status.

    Returns how many were evaluated. While Prometheus cannot answer, each shows Measured=False:
    its numbers are the last known, and health counts as unknown.
    """
    if ctx.kube is None or ctx.prometheus is None:
        return 0
    items = await asyncio.to_thread(ctx.kube.list_custom, SERVICE_LEVEL.plural)
    if not items:
        return 0
    planned = _planned_work(await asyncio.to_thread(ctx.kube.list_custom, CHANGE.plural))
    now = ctx.clock()
    stamp = rfc3339(now)
    refs, objects = [], {}
    moved: list[tuple[Mapping[str, Any], ServiceLevelSpec, list[Exclusion], list[Exclusion]]] = []
    for obj in items:
        meta = obj.get("metadata") or {}
        try:
            spec = ServiceLevelSpec.model_validate(obj.get("spec") or {})
        except ValueError:
            continue  # Ready=False InvalidSpec says why; nothing to measure
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        before = _exclusions_in(obj)
        after = merge(
            before,
            planned.get((namespace, spec.service), ()),
            [o.name for o in spec.objectives],
            now,
            timedelta(seconds=max((seconds(o.window) for o in spec.objectives), default=0)),
        )
        ref = ServiceLevelRef(namespace, name, spec, tuple(after))
        refs.append(ref)
        objects[(ref.namespace, ref.name)] = obj
        if after != before:
            moved.append((obj, spec, before, after))
    if not refs:
        return 0
    try:
        results = await asyncio.to_thread(evaluate_service_levels, ctx.prometheus, refs, now)
    except PrometheusUnavailableError as exc:
        down = (
            MEASURED,
            ConditionStatus.FALSE,
            "PrometheusUnavailable",
            f"{exc}. Health is unknown until it answers; changes for this service wait.",
        )
        for ref in refs:
            await _write(ctx, objects[(ref.namespace, ref.name)], [down], None, ref.exclusions)
        for m in moved:
            await _exclusions_changed(ctx, *m)
        return 0
    ctx.metrics.publish_slos(
        [
            (
                (ref.namespace, ref.name, ref.spec.service, o.name),
                o.objective,
                e.sli,
                e.error_budget_remaining,
                e.burn_rates,
                e.alerts,
            )
            for ref in refs
            for o, e in zip(ref.spec.objectives, results[(ref.namespace, ref.name)], strict=True)
        ]
    )
    for ref in refs:
        evaluations = results[(ref.namespace, ref.name)]
        updates = [_measured(evaluations), _budget(ref.spec, evaluations)]
        await _write(
            ctx,
            objects[(ref.namespace, ref.name)],
            updates,
            [_objective_status(e, stamp) for e in evaluations],
            ref.exclusions,
        )
        await _burn_incidents(ctx, ref, objects[(ref.namespace, ref.name)], evaluations, now)
    for m in moved:
        await _exclusions_changed(ctx, *m)
    return len(refs)


SERVICE_LEVEL_LABEL = "opsledger.io/servicelevel"
OBJECTIVE_LABEL = "opsledger.io/objective"


async def _burn_incidents(
    ctx: Context,
    ref: ServiceLevelRef,
    obj: Mapping[str, Any],
    evaluations: list[Evaluation],
    now: datetime,
) -> None:
    """One open Incident per burning objective: opened on the first alert, raised from ticket
    to page, never duplicated (the open one is found by its labels, also after a restart).
    Once people resolve it, a burn that goes on opens a new one."""
    assert ctx.kube is not None
    kube = ctx.kube
    burning = {
        o.name: burn
        for o, e in zip(ref.spec.objectives, evaluations, strict=True)
        if (burn := burn_incident(ref.spec.service, o.objective, o.window, e)) is not None
    }
    if not burning:
        return
    existing = await asyncio.to_thread(kube.list_namespaced_custom, INCIDENT.plural, ref.namespace)
    for objective, burn in burning.items():
        earlier = [
            i
            for i in existing
            if (i["metadata"].get("labels") or {}).get(SERVICE_LEVEL_LABEL) == ref.name
            and (i["metadata"].get("labels") or {}).get(OBJECTIVE_LABEL) == objective
        ]
        open_ = [i for i in earlier if (i.get("spec") or {}).get("state") not in RESOLVED_STATES]
        if open_:
            spec = open_[0].get("spec") or {}
            if escalates(severity_of(spec.get("impact"), spec.get("urgency")), burn):
                await asyncio.to_thread(
                    kube.patch_spec,
                    INCIDENT.plural,
                    open_[0]["metadata"]["name"],
                    ref.namespace,
                    {
                        "impact": burn.impact,
                        "urgency": burn.urgency,
                        "description": burn.description,
                    },
                )
            continue
        name = burn_incident_name(ref.name, objective, [i["metadata"]["name"] for i in earlier])
        opened = await asyncio.to_thread(
            open_incident,
            kube,
            ref.namespace,
            name,
            origin=OriginType.SLO_BURN,
            reference=f"{ref.name}/{objective}",
            labels={SERVICE_LEVEL_LABEL: ref.name, OBJECTIVE_LABEL: objective},
            spec={
                "title": burn.title,
                "description": burn.description,
                "service": ref.spec.service,
                "impact": burn.impact,
                "urgency": burn.urgency,
            },
        )
        if not opened:
            continue  # another replica (or an earlier pass) opened it: reported there
        await asyncio.to_thread(
            kube.post_event,
            obj,
            type="Warning",
            reason="ErrorBudgetBurn",
            message=f"objective {objective}: {burn.severity} alert; Incident {name} opened",
            component="opsledger",
        )


def _measured(evaluations: list[Evaluation]) -> tuple[str, ConditionStatus, str, str]:
    refused = [e for e in evaluations if e.error]
    if refused:
        return (
            MEASURED,
            ConditionStatus.FALSE,
            "InvalidQuery",
            "; ".join(f"objective {e.name}: {e.error}" for e in refused)
            + ": fix its sli.events queries (run them in Prometheus with {{.window}} as 5m)",
        )
    missing = [e.name for e in evaluations if e.sli is None]
    if missing:
        return (
            MEASURED,
            ConditionStatus.FALSE,
            "NoData",
            "no data for objective(s) "
            + ", ".join(missing)
            + ": check that the SLI queries return a series",
        )
    return (MEASURED, ConditionStatus.TRUE, "Measured", f"{len(evaluations)} objective(s) measured")


def _budget(
    spec: ServiceLevelSpec, evaluations: list[Evaluation]
) -> tuple[str, ConditionStatus, str, str]:
    policy = spec.error_budget_policy or ErrorBudgetPolicy()
    spent = exhausted(evaluations, policy.min_remaining)
    if spent:
        return (
            BUDGET_EXHAUSTED,
            ConditionStatus.TRUE,
            "BudgetExhausted",
            f"error budget below {policy.min_remaining:g} for "
            + ", ".join(spent)
            + ("; normal changes are held" if policy.block_normal_changes else ""),
        )
    return (
        BUDGET_EXHAUSTED,
        ConditionStatus.FALSE,
        "BudgetLeft",
        "every objective has error budget left",
    )


async def _write(
    ctx: Context,
    obj: Mapping[str, Any],
    updates: list[tuple[str, ConditionStatus, str, str]],
    objectives: list[dict[str, Any]] | None,
    exclusions: Iterable[Exclusion],
) -> None:
    assert ctx.kube is not None
    await write_status(
        ctx.kube,
        SERVICE_LEVEL.plural,
        obj,
        lambda fresh: _status_after(ctx, fresh, updates, objectives, exclusions),
    )


# -- planned work left out of the budget (domain.budget_exclusions) -----------------------


def _planned_work(changes: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[Any]]:
    """The Changes that declare planned impact, by (namespace, service)."""
    planned: dict[tuple[str, str], list[Any]] = {}
    for change in changes:
        seen = observe(change)
        if seen is not None:
            namespace = str((change.get("metadata") or {}).get("namespace"))
            service = str((change.get("spec") or {}).get("service"))
            planned.setdefault((namespace, service), []).append(seen)
    return planned


def _exclusions_in(obj: Mapping[str, Any]) -> list[Exclusion]:
    """What the ServiceLevel's status holds (only the operator writes it)."""
    held = (obj.get("status") or {}).get("budgetExclusions") or []
    return [e for item in held if (e := Exclusion.from_status(item)) is not None]


async def _exclusions_changed(
    ctx: Context,
    obj: Mapping[str, Any],
    spec: ServiceLevelSpec,
    before: list[Exclusion],
    after: list[Exclusion],
) -> None:
    """An Event per change whose planned work began, ended or stopped counting, and the
    PrometheusRule again, so Prometheus leaves out what the operator does."""
    assert ctx.kube is not None
    kube = ctx.kube
    old = {e.change: e for e in before}
    new = {e.change: e for e in after}
    for name in sorted(old.keys() | new.keys()):
        message = exclusion_message(old.get(name), new.get(name))
        if message:
            await asyncio.to_thread(
                kube.post_event,
                obj,
                type="Normal",
                reason="BudgetExclusion",
                message=message,
                component="opsledger",
            )
    owner = {
        **obj,
        "status": {**(obj.get("status") or {}), "budgetExclusions": [e.as_status() for e in after]},
    }
    try:
        await asyncio.to_thread(servicelevel_rules.publish, ctx, owner, spec)
    except RetryLaterError as exc:
        log.info("the PrometheusRule waits for the spec reconciler's retry: %s", exc)
