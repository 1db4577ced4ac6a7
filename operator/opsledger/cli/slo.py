"""opsledger slo evaluate|rules: a ServiceLevel's figures now, and its objectives as rules."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from opsledger.cli.common import CLIError, manifests, print_json, validated

if TYPE_CHECKING:
    from opsledger.services.servicelevel import ServiceLevelRef

# yaml, opsledger's domain, models, use cases and wiring load inside the functions: see
# cli/__init__.py.


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    slo = sub.add_parser("slo", help="service level objectives")
    slo_sub = slo.add_subparsers(metavar="ACTION", required=True)
    slo_eval = slo_sub.add_parser(
        "evaluate", help="SLI, error budget, burn rates and alerts of a ServiceLevel manifest"
    )
    slo_eval.add_argument("file", type=Path, help="a ServiceLevel manifest (YAML)")
    slo_eval.add_argument(
        "--prometheus", help="Prometheus URL (default: $OPSLEDGER_PROMETHEUS_URL)"
    )
    slo_eval.add_argument("--at", help="evaluate at this time (RFC 3339; default: now)")
    slo_eval.add_argument("-o", "--output", choices=["table", "json"], default="table")
    slo_eval.set_defaults(func=_evaluate)
    slo_rules = slo_sub.add_parser(
        "rules",
        help="the objectives of ServiceLevel manifests as Prometheus recording and alerting rules",
    )
    slo_rules.add_argument("file", type=Path, help="ServiceLevel manifests (YAML)")
    slo_rules.add_argument(
        "-o",
        "--output",
        choices=["rules", "prometheusrule"],
        default="rules",
        help="a rule file for Prometheus (default) or PrometheusRule objects",
    )
    slo_rules.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label for the PrometheusRule objects (the one your Prometheus selects by)",
    )
    slo_rules.set_defaults(func=_rules)


def _evaluate(args: argparse.Namespace) -> int:
    from opsledger.domain.times import parse_time  # noqa: PLC0415
    from opsledger.models.settings import Settings  # noqa: PLC0415
    from opsledger.services.errors import UnavailableError  # noqa: PLC0415
    from opsledger.services.servicelevel import measure  # noqa: PLC0415
    from opsledger.services.wiring import cli_context  # noqa: PLC0415  (kubernetes, git)

    url = args.prometheus or os.environ.get("OPSLEDGER_PROMETHEUS_URL")
    if not url:
        raise CLIError("give --prometheus URL (or set OPSLEDGER_PROMETHEUS_URL)")
    refs = _service_levels(args.file)
    at = parse_time(args.at) if args.at else None  # a time without a zone is UTC
    if args.at and at is None:
        raise CLIError(f"--at {args.at!r} is not RFC 3339, e.g. 2026-11-28T22:30:00Z")
    ctx = cli_context(Settings(prometheus_url=url), with_kube=False, with_prometheus=True)
    try:
        results = measure(ctx, refs, at)
    except UnavailableError as exc:
        raise CLIError(str(exc), code=1) from exc
    objectives = [e for ref in refs for e in results[(ref.namespace, ref.name)]]
    refused = 0
    for e in objectives:  # a query Prometheus refuses fails the check (exit 1), named
        if e.error:
            print(f"opsledger: objective {e.name}: {e.error}", file=sys.stderr)
            refused = 1
    if args.output == "json":
        print_json({"objectives": [e.as_json() for e in objectives]})
        return refused

    def fmt(value: float | None, pattern: str) -> str:
        return "-" if value is None else pattern.format(value)

    print(f"{'OBJECTIVE':<20} {'SLI %':>9} {'BUDGET':>8} {'BURN 1h':>8} {'BURN 6h':>8}  ALERTS")
    for e in objectives:
        print(
            f"{e.name:<20} {fmt(e.sli, '{:.4f}'):>9} {fmt(e.error_budget_remaining, '{:.3f}'):>8}"
            f" {fmt(e.burn_rates['1h'], '{:.2f}'):>8} {fmt(e.burn_rates['6h'], '{:.2f}'):>8}  "
            f"{','.join(e.alerts) or '-'}"
        )
    return refused


def _service_levels(path: Path) -> list[ServiceLevelRef]:
    """The ServiceLevels of a manifest file, validated, or a CLIError naming the fields."""
    from opsledger.models.servicelevel import ServiceLevelSpec  # noqa: PLC0415
    from opsledger.services.servicelevel import ServiceLevelRef  # noqa: PLC0415

    return [
        ServiceLevelRef(
            m.get("metadata", {}).get("namespace", "default"),
            m.get("metadata", {}).get("name", "unnamed"),
            validated(ServiceLevelSpec, m, path),
        )
        for m in manifests(path, "ServiceLevel")
    ]


def _rules(args: argparse.Namespace) -> int:
    import yaml  # noqa: PLC0415

    from opsledger.domain.slo_rules import (  # noqa: PLC0415
        RuleObjective,
        prometheus_rule,
        rule_groups,
    )

    labels = {}
    for pair in args.label:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--label {pair!r}: write KEY=VALUE, e.g. release=prometheus")
        labels[key] = value
    documents = []
    for ref in _service_levels(args.file):
        objectives = [
            RuleObjective(
                o.name, o.objective, o.window, o.sli.events.error_query, o.sli.events.total_query
            )
            for o in ref.spec.objectives
        ]
        if not objectives:
            continue
        groups = rule_groups(ref.namespace, ref.name, ref.spec.service, objectives)
        if args.output == "prometheusrule":
            documents.append(prometheus_rule(ref.namespace, ref.name, groups, labels))
        elif documents:
            documents[0]["groups"] += groups
        else:
            documents.append({"groups": groups})
    if not documents:
        raise CLIError(f"{args.file}: no ServiceLevel there has objectives")
    print(yaml.safe_dump_all(documents, sort_keys=False, width=1000, allow_unicode=True), end="")
    return 0
