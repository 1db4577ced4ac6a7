"""A PrometheusRule beside every ServiceLevel (OPSLEDGER_SLO_PROMETHEUS_RULES): its objectives'
recording and burn-rate alerting rules, so the Prometheus Operator's Prometheus computes the
same numbers and pages on its own, even while the operator is down.

The rule is applied on every valid spec (create, update, operator start) and owned by the
ServiceLevel, so Kubernetes deletes it with the ServiceLevel. The condition RulesPublished says
whether it is in place; while the cluster serves no PrometheusRule, or the operator may not
write one, it says so and the handler tries again every 5 OPSLEDGER_SLO_INTERVALs.
"""

from __future__ import annotations

import contextlib

import kopf

from opsledger.adapters.kube import Kube
from opsledger.domain.slo_rules import RuleObjective, prometheus_rule, rule_groups, rule_name
from opsledger.handlers.common import write_condition
from opsledger.models.common import ConditionStatus
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.services.context import Context

RULES_PUBLISHED = "RulesPublished"
RULE_API_VERSION, RULE_KIND = "monitoring.coreos.com/v1", "PrometheusRule"
# A missing CRD or RBAC rule takes a person to fix: try again every few SLO intervals (each
# try is also an Error Event from Kopf, so not every interval).
RETRY_INTERVALS = 5


def publish(ctx: Context, body: kopf.Body, spec: ServiceLevelSpec, patch: kopf.Patch) -> None:
    """Apply the ServiceLevel's PrometheusRule and report RulesPublished (a kopf `then`)."""
    if not ctx.settings.slo_prometheus_rules or ctx.kube is None:
        return
    try:
        outcome = _apply(ctx.kube, ctx.settings.slo_rule_labels, body, spec)
    except LookupError:
        _report(
            ctx,
            body,
            patch,
            (
                ConditionStatus.FALSE,
                "PrometheusRuleUnavailable",
                f"the cluster serves no {RULE_KIND} ({RULE_API_VERSION}): install the "
                "Prometheus Operator's CRDs, or set OPSLEDGER_SLO_PROMETHEUS_RULES=false (the "
                "chart's slo.prometheusRules.enabled)",
            ),
        )
        raise kopf.TemporaryError(
            f"no {RULE_KIND} in the cluster", delay=RETRY_INTERVALS * ctx.settings.slo_interval
        ) from None
    except PermissionError as exc:
        _report(
            ctx,
            body,
            patch,
            (
                ConditionStatus.FALSE,
                "Forbidden",
                f"{exc} in {body.metadata.get('namespace')}: grant get, create, patch and "
                "delete on prometheusrules (the chart does with slo.prometheusRules.enabled)",
            ),
        )
        raise kopf.TemporaryError(
            str(exc), delay=RETRY_INTERVALS * ctx.settings.slo_interval
        ) from None
    _report(ctx, body, patch, outcome)


def _apply(
    kube: Kube, labels: dict[str, str], body: kopf.Body, spec: ServiceLevelSpec
) -> tuple[ConditionStatus, str, str]:
    """Put the PrometheusRule in place (or remove it when there are no objectives)."""
    namespace, name = str(body.metadata.get("namespace")), str(body.metadata.get("name"))
    objectives = [
        RuleObjective(
            o.name, o.objective, o.window, o.sli.events.error_query, o.sli.events.total_query
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
            "apiVersion": str(body.get("apiVersion")),
            "kind": str(body.get("kind")),
            "name": name,
            "uid": str(body.metadata.get("uid")),
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


def _report(
    ctx: Context, body: kopf.Body, patch: kopf.Patch, outcome: tuple[ConditionStatus, str, str]
) -> None:
    """Set RulesPublished in the handler's patch (beside Ready); an Event when it changes."""
    write_condition(ctx, body, patch, (RULES_PUBLISHED, *outcome))
