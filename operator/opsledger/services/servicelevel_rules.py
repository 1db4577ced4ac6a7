"""A PrometheusRule beside every ServiceLevel (OPSLEDGER_SLO_PROMETHEUS_RULES): its objectives'
recording and burn-rate alerting rules, so the Prometheus Operator's Prometheus computes the
same numbers and pages on its own, even while the operator is down.

The rule is applied on every valid spec (create, update, operator start), and again by the
evaluation loop when the planned work left out of the budget changes (status.budgetExclusions,
domain.budget_exclusions); it is owned by the ServiceLevel, so Kubernetes deletes it with the
ServiceLevel. The condition RulesPublished says whether it is in place; while the cluster serves
no PrometheusRule, or the operator may not write one, it says so and the handler tries again
every 5 OPSLEDGER_SLO_INTERVALs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from opsledger.adapters.kube import Kube
from opsledger.domain.budget_exclusions import Exclusion, intervals
from opsledger.domain.outcome import Outcome
from opsledger.domain.slo_rules import RuleObjective, prometheus_rule, rule_groups, rule_name
from opsledger.models.common import ConditionStatus
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.services.context import Context
from opsledger.services.errors import RetryLaterError

RULES_PUBLISHED = "RulesPublished"
RULE_API_VERSION, RULE_KIND = "monitoring.coreos.com/v1", "PrometheusRule"
# A missing CRD or RBAC rule takes a person to fix: try again every few SLO intervals (each
# try is also an Error Event from Kopf, so not every interval).
RETRY_INTERVALS = 5


def publish(ctx: Context, owner: Mapping[str, Any], spec: ServiceLevelSpec) -> Outcome:
    """Apply the ServiceLevel's PrometheusRule; RulesPublished says how it went.

    Raises RetryLaterError (with RulesPublished=False) while the cluster cannot take it."""
    outcome = Outcome()
    if not ctx.settings.slo_prometheus_rules or ctx.kube is None:
        return outcome
    retry = RETRY_INTERVALS * ctx.settings.slo_interval
    try:
        outcome.condition(
            RULES_PUBLISHED, *_apply(ctx.kube, ctx.settings.slo_rule_labels, owner, spec)
        )
    except LookupError:
        outcome.condition(
            RULES_PUBLISHED,
            ConditionStatus.FALSE,
            "PrometheusRuleUnavailable",
            f"the cluster serves no {RULE_KIND} ({RULE_API_VERSION}): install the "
            "Prometheus Operator's CRDs, or set OPSLEDGER_SLO_PROMETHEUS_RULES=false (the "
            "chart's slo.prometheusRules.enabled)",
        )
        raise RetryLaterError(
            f"no {RULE_KIND} in the cluster", delay=retry, outcome=outcome
        ) from None
    except PermissionError as exc:
        namespace = (owner.get("metadata") or {}).get("namespace")
        outcome.condition(
            RULES_PUBLISHED,
            ConditionStatus.FALSE,
            "Forbidden",
            f"{exc} in {namespace}: grant get, create, patch and "
            "delete on prometheusrules (the chart does with slo.prometheusRules.enabled)",
        )
        raise RetryLaterError(str(exc), delay=retry, outcome=outcome) from None
    return outcome


def _apply(
    kube: Kube, labels: dict[str, str], owner: Mapping[str, Any], spec: ServiceLevelSpec
) -> tuple[ConditionStatus, str, str]:
    """Put the PrometheusRule in place (or remove it when there are no objectives)."""
    meta = owner.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    exclusions = [
        e
        for item in (owner.get("status") or {}).get("budgetExclusions") or []
        if (e := Exclusion.from_status(item)) is not None
    ]
    objectives = [
        RuleObjective(
            o.name,
            o.objective,
            o.window,
            o.sli.events.error_query,
            o.sli.events.total_query,
            tuple(intervals(exclusions, o.name)),
        )
        for o in spec.objectives
    ]
    if not objectives:  # nothing to compute: no rule (one from earlier objectives goes)
        with contextlib.suppress(LookupError):  # no CRD: no rule to remove either
            kube.delete(RULE_API_VERSION, RULE_KIND, rule_name(name), namespace)
        return ConditionStatus.TRUE, "NoObjectives", "no objectives, no rules"
    document = prometheus_rule(
        namespace, name, rule_groups(namespace, name, spec.service, objectives), labels
    )
    document["metadata"]["ownerReferences"] = [
        {
            "apiVersion": str(owner.get("apiVersion")),
            "kind": str(owner.get("kind")),
            "name": name,
            "uid": str(meta.get("uid")),
            "controller": True,
        }
    ]
    kube.apply(document)
    count = sum(len(g["rules"]) for g in document["spec"]["groups"])
    return (
        ConditionStatus.TRUE,
        "Published",
        f"{RULE_KIND} {rule_name(name)}: {count} rules for {len(objectives)} objective(s)",
    )
