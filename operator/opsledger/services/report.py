"""The monthly service review, committed to the CMDB under reports/<cluster>/<YYYY-MM>.md.

The operator writes the previous month's report once a month has ended (and again after a
restart only if it is missing); `opsledger report --month YYYY-MM` writes one on demand. The
figures come from the cluster's objects, the SLOs from Prometheus at the month's end (or the
last evaluation in status when Prometheus cannot answer, said so in the report).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsledger.adapters.charts import bar_chart
from opsledger.adapters.prometheus import PrometheusUnavailableError
from opsledger.domain import report
from opsledger.domain.budget_exclusions import Exclusion
from opsledger.domain.kpi import change_fact, compute, incident_fact
from opsledger.models import CHANGE, CONFIGURATION_ITEM, INCIDENT, SERVICE_LEVEL
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.services.context import Context
from opsledger.services.records import write_record
from opsledger.services.servicelevel import ServiceLevelRef, evaluate_service_levels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Written:
    path: str
    sha: str
    changed: bool
    text: str


def _refs(service_levels: list[dict[str, Any]]) -> list[ServiceLevelRef]:
    """The valid ServiceLevels, with the planned work their status leaves out of the budget."""
    refs = []
    for obj in service_levels:
        meta = obj.get("metadata") or {}
        try:
            spec = ServiceLevelSpec.model_validate(obj.get("spec") or {})
        except ValueError:
            continue
        held = (obj.get("status") or {}).get("budgetExclusions") or []
        exclusions = tuple(e for i in held if (e := Exclusion.from_status(i)) is not None)
        refs.append(
            ServiceLevelRef(str(meta.get("namespace")), str(meta.get("name")), spec, exclusions)
        )
    return refs


def _exclusions(
    refs: list[ServiceLevelRef], start: datetime, end: datetime
) -> list[report.ExclusionFigure]:
    """The planned work of the month (what overlaps it) left out of the budget."""
    return [
        report.ExclusionFigure(
            ref.namespace, ref.spec.service, e.change, e.objectives, e.start, e.end
        )
        for ref in refs
        for e in ref.exclusions
        if e.start < end and (e.end is None or e.end > start)
    ]


def _objectives(
    ctx: Context, refs: list[ServiceLevelRef], service_levels: list[dict[str, Any]], at: datetime
) -> tuple[list[report.ObjectiveFigure], list[str]]:
    if not refs:
        return [], []
    notes: list[str] = []
    measured: dict[tuple[str, str], list[Any]] | None = None
    if ctx.prometheus is not None:
        try:
            measured = evaluate_service_levels(ctx.prometheus, refs, at)
        except PrometheusUnavailableError as exc:
            notes.append(f"Prometheus did not answer ({exc}): SLOs are the last evaluation.")
    else:
        notes.append("No Prometheus configured: SLOs are the last evaluation in status.")
    statuses = {
        (str(o["metadata"].get("namespace")), str(o["metadata"].get("name"))): {
            s.get("name"): s for s in (o.get("status") or {}).get("objectives") or []
        }
        for o in service_levels
    }
    figures = []
    for ref in refs:
        for i, objective in enumerate(ref.spec.objectives):
            if measured is not None:
                e = measured[(ref.namespace, ref.name)][i]
                sli, budget = e.sli, e.error_budget_remaining
            else:
                last = statuses.get((ref.namespace, ref.name), {}).get(objective.name) or {}
                sli, budget = last.get("sli"), last.get("errorBudgetRemaining")
            figures.append(
                report.ObjectiveFigure(
                    ref.namespace,
                    ref.spec.service,
                    objective.name,
                    objective.objective,
                    sli,
                    budget,
                )
            )
    return figures, notes


def facts_for(
    ctx: Context, month: str, objects: Mapping[str, list[dict[str, Any]]]
) -> report.ReviewFacts:
    """The month's review facts from the cluster's objects (and Prometheus for SLOs)."""
    start, end = report.month_bounds(month)
    now = ctx.clock()
    until = min(end, now)
    if until <= start:
        raise ValueError(f"{month} has not begun yet")
    kpis = compute(
        [f for o in objects["incidents"] if (f := incident_fact(o)) is not None],
        [c for o in objects["changes"] if (c := change_fact(o)) is not None],
        now=until,
        window=until - start,
    )
    refs = _refs(objects["servicelevels"])
    objectives, notes = _objectives(ctx, refs, objects["servicelevels"], until)
    if until < end:
        notes.append("The month is not over: the figures are those of the day of this commit.")
    return report.ReviewFacts(
        cluster=ctx.settings.cluster,
        month=month,
        kpis=kpis,
        objectives=objectives,
        exclusions=_exclusions(refs, start, until),
        capacity=report.capacity_figures(objects["configurationitems"]),
        problems=report.problem_figures(objects["incidents"], start, end),
        notes=notes,
    )


def gather(ctx: Context) -> dict[str, list[dict[str, Any]]]:
    assert ctx.kube is not None
    return {
        kind.plural: ctx.kube.list_custom(kind.plural)
        for kind in (INCIDENT, CHANGE, SERVICE_LEVEL, CONFIGURATION_ITEM)
    }


def documents(facts: report.ReviewFacts) -> dict[str, str]:
    """Path → content of the report and its charts."""
    files = {report.report_path(facts.cluster, facts.month): report.render(facts)}
    for chart in report.charts(facts):
        files[report.chart_path(facts.cluster, facts.month, chart)] = bar_chart(
            chart.title, chart.labels, chart.series, chart.ylabel
        )
    return files


async def write_report(ctx: Context, month: str) -> Written:
    """Gather, render and commit the month's review (one commit for the text and its charts)."""
    if ctx.cmdb is None:
        raise RuntimeError("no CMDB configured (OPSLEDGER_CMDB_URL): nowhere to commit the report")
    objects = await asyncio.to_thread(gather, ctx)
    facts = await asyncio.to_thread(facts_for, ctx, month, objects)
    files = await asyncio.to_thread(documents, facts)
    reason = f"Service review {month} for {facts.cluster}"
    written = await asyncio.gather(*(write_record(ctx, p, t, reason) for p, t in files.items()))
    failed = next((w.error for w in written if w.error is not None), None)
    if failed is not None:
        raise failed
    commits = [w.commit for w in written if w.commit is not None]
    path = report.report_path(facts.cluster, month)
    main = next(c for c in commits if c.path == path)
    return Written(path, main.sha, any(c.changed for c in commits), files[path])


async def review_last_month(ctx: Context) -> None:
    """Commit the report of the month that ended last, unless the CMDB has it already."""
    assert ctx.cmdb is not None
    month = report.previous_month(ctx.clock())
    path = report.report_path(ctx.settings.cluster, month)
    await asyncio.to_thread(ctx.cmdb.refresh)
    if await asyncio.to_thread(ctx.cmdb.read, path) is None:
        written = await write_report(ctx, month)
        log.info("committed the service review %s (%s)", written.path, written.sha[:12])
