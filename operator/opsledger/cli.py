"""The `opsledger` command: entry points only, no logic."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from opsledger import __version__


class CLIError(Exception):
    """A problem to report in one line, with the exit status to use."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except CLIError as exc:
        print(f"opsledger: {exc}", file=sys.stderr)
        return exc.code
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opsledger",
        description="IT service and operations management native to Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"opsledger {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="run the operator (settings from flags or OPSLEDGER_* vars)")
    run.add_argument("--kubeconfig", help="kubeconfig path (default: $KUBECONFIG, else in-cluster)")
    run.add_argument("--cluster", help="this cluster's name in the CMDB ($OPSLEDGER_CLUSTER)")
    run.add_argument("--cmdb-url", help="the CMDB Git remote ($OPSLEDGER_CMDB_URL)")
    run.add_argument("--cmdb-branch", help="the CMDB's protected branch ($OPSLEDGER_CMDB_BRANCH)")
    run.add_argument("--prometheus-url", help="Prometheus URL ($OPSLEDGER_PROMETHEUS_URL)")
    run.add_argument("--alertmanager-url", help="Alertmanager URL ($OPSLEDGER_ALERTMANAGER_URL)")
    run.add_argument(
        "--namespace", action="append", dest="namespaces", help="watch only this namespace (repeat)"
    )
    run.add_argument("--metrics-port", type=int, help="port of /metrics (default 9102)")
    run.add_argument("--health-port", type=int, help="port of /healthz (default 8081)")
    run.add_argument("--bind-address", help="address the endpoints listen on (default 0.0.0.0)")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    run.set_defaults(func=_run)

    crds = sub.add_parser("crds", help="write the CRDs generated from the models")
    crds.add_argument("-d", "--output-dir", default="crds", help="folder to write (default crds/)")
    crds.add_argument(
        "--chart-dir",
        default="charts/opsledger/files/crds",
        help="the Helm chart's copy, written and checked too (default "
        "charts/opsledger/files/crds/; empty: none)",
    )
    crds.add_argument(
        "--check", action="store_true", help="exit 1 when the folder differs from the models"
    )
    crds.add_argument("--stdout", action="store_true", help="print them as one YAML stream")
    crds.set_defaults(func=_crds)

    _add_cmdb(sub)
    _add_slo(sub)
    _add_window(sub)
    _add_change(sub)
    _add_report(sub)
    _add_dev(sub)
    return parser


def _add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """opsledger report --month YYYY-MM"""
    review = sub.add_parser(
        "report",
        help="commit the monthly service review (Markdown and charts) to the CMDB under "
        "reports/<cluster>/<YYYY-MM>.md",
    )
    review.add_argument("--month", help="the month, YYYY-MM (default: the previous month)")
    review.add_argument("--kubeconfig", help="kubeconfig path (default: $KUBECONFIG)")
    review.add_argument("--cluster", help="this cluster's name ($OPSLEDGER_CLUSTER)")
    review.add_argument("--cmdb-url", help="the CMDB Git remote ($OPSLEDGER_CMDB_URL)")
    review.add_argument("--prometheus-url", help="Prometheus URL ($OPSLEDGER_PROMETHEUS_URL)")
    review.add_argument(
        "--print", action="store_true", help="also print the report's Markdown after committing"
    )
    review.set_defaults(func=_report)


def _add_cmdb(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """opsledger cmdb validate|impact"""
    cmdb = sub.add_parser("cmdb", help="work with a CMDB repository checkout")
    cmdb_sub = cmdb.add_subparsers(metavar="ACTION", required=True)
    validate = cmdb_sub.add_parser(
        "validate", help="check every record parses, matches its schema and sits at its path"
    )
    validate.add_argument("directory", nargs="?", default=".", type=Path, help="the checkout")
    validate.add_argument("-o", "--output", choices=["text", "json"], default="text")
    validate.set_defaults(func=_cmdb_validate)

    impact = cmdb_sub.add_parser(
        "impact", help="what depends on a configuration item, transitively, as a tree"
    )
    impact.add_argument("item", help="the ConfigurationItem's name (or namespace/name)")
    impact.add_argument("-n", "--namespace", default="default", help="its namespace")
    impact.add_argument("--kubeconfig", help="kubeconfig path (default: $KUBECONFIG)")
    impact.add_argument("-o", "--output", choices=["tree", "json"], default="tree")
    impact.set_defaults(func=_cmdb_impact)


def _add_slo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """opsledger slo evaluate"""
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
    slo_eval.set_defaults(func=_slo_evaluate)
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
    slo_rules.set_defaults(func=_slo_rules)


def _add_window(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """opsledger window"""
    window = sub.add_parser(
        "window", help="may a change start now (or --at)? windows and freezes of a ServiceLevel"
    )
    window.add_argument("file", type=Path, help="a ServiceLevel manifest (YAML)")
    window.add_argument("--at", help="the moment to ask about (RFC 3339; default: now)")
    window.add_argument("--emergency", action="store_true", help="answer for an emergency change")
    window.add_argument("-o", "--output", choices=["text", "json"], default="text")
    window.set_defaults(func=_window)


def _add_change(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """opsledger change plan"""
    change = sub.add_parser("change", help="changes")
    change_sub = change.add_subparsers(metavar="ACTION", required=True)
    plan = change_sub.add_parser(
        "plan",
        help="evaluate a Change manifest against the cluster and Prometheus without applying "
        "it: windows, conflicts, health, risk (exit 1 when something blocks it)",
    )
    plan.add_argument("file", type=Path, help="a Change manifest (YAML)")
    plan.add_argument("--kubeconfig", help="kubeconfig path (default: $KUBECONFIG)")
    plan.add_argument(
        "--prometheus", help="Prometheus URL (default: $OPSLEDGER_PROMETHEUS_URL; unset: no health)"
    )
    plan.add_argument("-n", "--namespace", help="namespace (default: the manifest's, or default)")
    plan.add_argument("--at", help="evaluate at this time (RFC 3339; default: now)")
    plan.add_argument("-o", "--output", choices=["text", "json"], default="text")
    plan.set_defaults(func=_change_plan)


def _add_dev(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """opsledger dev up|down|env|status"""
    dev = sub.add_parser("dev", help="the local environment (control plane, Prometheus, CMDB)")
    dev.add_argument("--dir", type=Path, help="state folder (default: .dev/ in the checkout)")
    dev_sub = dev.add_subparsers(metavar="ACTION", required=True)
    dev_sub.add_parser("up", help="start everything, return when healthy").set_defaults(
        func=_dev_up
    )
    dev_sub.add_parser("down", help="stop the processes `up` started").set_defaults(func=_dev_down)
    dev_env = dev_sub.add_parser("env", help="print export lines for a shell")
    dev_env.add_argument("-o", "--output", choices=["shell", "json"], default="shell")
    dev_env.set_defaults(func=_dev_env)
    dev_status = dev_sub.add_parser("status", help="each component, its port, PID and health")
    dev_status.add_argument("-o", "--output", choices=["table", "json"], default="table")
    dev_status.set_defaults(func=_dev_status)


def _run(args: argparse.Namespace) -> int:
    from opsledger import main as operator_main  # noqa: PLC0415  (kopf loads only for `run`)
    from opsledger.models.settings import Settings  # noqa: PLC0415

    operator_main.configure_logging(verbose=args.verbose)
    settings = Settings.from_env()
    overrides = {
        name: value
        for name, value in {
            "kubeconfig": args.kubeconfig,
            "cluster": args.cluster,
            "cmdb_url": args.cmdb_url,
            "cmdb_branch": args.cmdb_branch,
            "prometheus_url": args.prometheus_url,
            "alertmanager_url": args.alertmanager_url,
            "namespaces": args.namespaces,
            "metrics_port": args.metrics_port,
            "health_port": args.health_port,
            "bind_address": args.bind_address,
        }.items()
        if value is not None
    }
    settings = settings.model_copy(update=overrides)
    try:
        operator_main.main(settings)
    except operator_main.CRDsMissingError as exc:
        print(f"opsledger: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _crds(args: argparse.Namespace) -> int:
    from opsledger.models import KINDS  # noqa: PLC0415
    from opsledger.models.crd import crd_files  # noqa: PLC0415

    files = crd_files(KINDS)
    if args.stdout:
        sys.stdout.write("---\n".join(files.values()))
        return 0
    # The chart carries the same files (templated with helm.sh/resource-policy: keep, so a
    # `helm upgrade` upgrades them); both copies are written and checked together.
    folders = [Path(args.output_dir)] + ([Path(args.chart_dir)] if args.chart_dir else [])
    if args.check:
        drifted = False
        for folder in folders:
            stale = [
                name
                for name, text in files.items()
                if not (folder / name).exists() or (folder / name).read_text() != text
            ]
            extra = (
                sorted(p.name for p in folder.glob("*.yaml") if p.name not in files)
                if folder.exists()
                else []
            )
            if stale or extra:
                drifted = True
                print(
                    f"{folder}/ differs from the models: {', '.join(stale + extra)}. "
                    "Run `opsledger crds` and commit the result.",
                    file=sys.stderr,
                )
        return 1 if drifted else 0
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for stale_file in folder.glob("*.yaml"):
            if stale_file.name not in files:
                stale_file.unlink()
        for name, text in files.items():
            (folder / name).write_text(text)
            print(folder / name)
    return 0


def _cmdb_validate(args: argparse.Namespace) -> int:
    from opsledger.domain.validate import validate_tree  # noqa: PLC0415

    root: Path = args.directory
    files = sorted((root / "clusters").rglob("*.yaml")) if (root / "clusters").is_dir() else []
    problems = validate_tree(
        (p.relative_to(root).as_posix(), p.read_text(errors="replace")) for p in files
    )
    if args.output == "json":
        print(json.dumps({"records": len(files), "problems": [p.__dict__ for p in problems]}))
    else:
        for problem in problems:
            print(problem, file=sys.stderr)
        verdict = f"{len(problems)} problem(s)" if problems else "all valid"
        print(f"{len(files)} record(s) checked in {root}: {verdict}")
    return 1 if problems else 0


def _cmdb_impact(args: argparse.Namespace) -> int:
    import os  # noqa: PLC0415

    from opsledger.adapters.kube import Kube, api_client  # noqa: PLC0415
    from opsledger.domain.impact import ImpactGraph, ImpactNode, render_tree  # noqa: PLC0415

    item = args.item if "/" in args.item else f"{args.namespace}/{args.item}"
    api = api_client(args.kubeconfig or os.environ.get("KUBECONFIG"))
    try:
        items = Kube(api).list_custom("configurationitems")
    finally:
        api.close()  # type: ignore[no-untyped-call]
    relationships: dict[str, list[tuple[str, str]]] = {}
    labels: dict[str, str] = {}
    for ci in items:
        key = f"{ci['metadata']['namespace']}/{ci['metadata']['name']}"
        status = ci.get("status") or {}
        rels = [
            *(ci.get("spec", {}).get("relationships") or []),
            *(status.get("relationships") or []),
        ]
        relationships[key] = [(r["type"], r["target"]) for r in rels]
        labels[key] = str(status.get("class") or ci.get("spec", {}).get("class") or "?")
    if item not in relationships:
        print(f"opsledger: no ConfigurationItem {item}", file=sys.stderr)
        return 1
    graph = ImpactGraph(relationships)
    tree = graph.tree(item)
    if args.output == "json":

        def as_dict(node: ImpactNode) -> dict[str, object]:
            return {
                "item": node.item,
                "via": node.via,
                "dependents": [as_dict(c) for c in node.children],
            }

        dependents = sorted(graph.dependents(item))
        print(
            json.dumps(
                {
                    "item": item,
                    "count": len(dependents),
                    "dependents": dependents,
                    "tree": as_dict(tree),
                },
                indent=2,
            )
        )
    else:
        print(render_tree(tree, labels))
    return 0


def _slo_evaluate(args: argparse.Namespace) -> int:
    import os  # noqa: PLC0415
    from datetime import datetime  # noqa: PLC0415

    from opsledger.adapters.prometheus import (  # noqa: PLC0415
        Prometheus,
        PrometheusUnavailableError,
    )
    from opsledger.handlers.servicelevel import evaluate_service_levels  # noqa: PLC0415

    url = args.prometheus or os.environ.get("OPSLEDGER_PROMETHEUS_URL")
    if not url:
        raise CLIError("give --prometheus URL (or set OPSLEDGER_PROMETHEUS_URL)")
    refs = _service_levels(args.file)
    try:
        at = datetime.fromisoformat(args.at.replace("Z", "+00:00")) if args.at else None
    except ValueError as exc:
        raise CLIError(f"--at: {exc}") from exc
    try:
        results = evaluate_service_levels(Prometheus(url), refs, at)
    except PrometheusUnavailableError as exc:
        raise CLIError(str(exc), code=1) from exc
    objectives = [e for ref in refs for e in results[(ref.namespace, ref.name)]]
    refused = 0
    for e in objectives:  # a query Prometheus refuses fails the check (exit 1), named
        if e.error:
            print(f"opsledger: objective {e.name}: {e.error}", file=sys.stderr)
            refused = 1
    if args.output == "json":
        print(json.dumps({"objectives": [e.as_json() for e in objectives]}, indent=2))
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


def _service_levels(path: Path):  # type: ignore[no-untyped-def]
    """The ServiceLevels of a manifest file, validated, or a CLIError naming the fields."""
    import yaml  # noqa: PLC0415
    from pydantic import ValidationError  # noqa: PLC0415

    from opsledger.domain.validation import describe  # noqa: PLC0415
    from opsledger.handlers.servicelevel import ServiceLevelRef  # noqa: PLC0415
    from opsledger.models.servicelevel import ServiceLevelSpec  # noqa: PLC0415

    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as exc:
        raise CLIError(f"cannot read {path}: {exc}") from exc
    manifests = [d for d in docs if d.get("kind") == "ServiceLevel"]
    if not manifests:
        raise CLIError(f"{path} holds no ServiceLevel")
    try:
        return [
            ServiceLevelRef(
                m.get("metadata", {}).get("namespace", "default"),
                m.get("metadata", {}).get("name", "unnamed"),
                ServiceLevelSpec.model_validate(m.get("spec") or {}),
            )
            for m in manifests
        ]
    except ValidationError as exc:
        raise CLIError(f"{path}: {describe(exc)}") from exc


def _slo_rules(args: argparse.Namespace) -> int:
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


def _window(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime  # noqa: PLC0415

    from opsledger.domain.windows import decide, rfc3339  # noqa: PLC0415
    from opsledger.models.servicelevel import ServiceLevelSpec  # noqa: PLC0415

    manifest = _one_manifest(args.file, "ServiceLevel")
    spec = _validated(ServiceLevelSpec, manifest, args.file)
    at = _moment(args.at) if args.at else datetime.now(UTC)
    decision = decide(
        at,
        windows=spec.maintenance_windows,
        freezes=spec.freezes,
        emergency=args.emergency,
    )
    if args.output == "json":
        print(json.dumps(decision.to_json(), indent=2))
        return 0
    print(f"{'allowed' if decision.allowed else 'not allowed'} at {rfc3339(at)}: {decision.reason}")
    if decision.next:
        label = "window" if decision.allowed else "next"
        print(f"{label}: {rfc3339(decision.next.start)} to {rfc3339(decision.next.end)}")
    return 0


def _change_plan(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415
    import os  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from opsledger.adapters import kube  # noqa: PLC0415
    from opsledger.adapters.prometheus import Prometheus  # noqa: PLC0415
    from opsledger.handlers.change_assessment import plan  # noqa: PLC0415
    from opsledger.models.change import ChangeSpec  # noqa: PLC0415

    manifest = _one_manifest(args.file, "Change")
    spec = _validated(ChangeSpec, manifest, args.file)
    meta = manifest.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    namespace = args.namespace or str(meta.get("namespace") or "default")
    url = args.prometheus or os.environ.get("OPSLEDGER_PROMETHEUS_URL")
    at = _moment(args.at) if args.at else datetime.now(UTC)
    api = kube.api_client(args.kubeconfig or os.environ.get("KUBECONFIG"))
    try:
        report = asyncio.run(
            plan(
                kube.Kube(api),
                Prometheus(url) if url else None,
                namespace=namespace,
                name=str(meta.get("name") or args.file.stem),
                spec=spec,
                now=at,
            )
        )
    finally:
        api.close()  # type: ignore[no-untyped-call]
    if args.output == "json":
        print(json.dumps(report, indent=2))
    else:
        _print_plan(report)
    return 0 if report["ok"] else 1


def _report(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415
    import os  # noqa: PLC0415
    import tempfile  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from opsledger.adapters import kube  # noqa: PLC0415
    from opsledger.adapters.metrics import Metrics  # noqa: PLC0415
    from opsledger.adapters.prometheus import Prometheus  # noqa: PLC0415
    from opsledger.domain.report import month_bounds, previous_month  # noqa: PLC0415
    from opsledger.handlers.report import write_report  # noqa: PLC0415
    from opsledger.main import cmdb_store  # noqa: PLC0415
    from opsledger.models.settings import Settings  # noqa: PLC0415
    from opsledger.services.context import Context  # noqa: PLC0415

    month = args.month or previous_month(datetime.now(UTC))
    try:
        month_bounds(month)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    overrides = {
        name: value
        for name, value in {
            "kubeconfig": args.kubeconfig or os.environ.get("KUBECONFIG"),
            "cluster": args.cluster,
            "cmdb_url": args.cmdb_url,
            "prometheus_url": args.prometheus_url,
        }.items()
        if value
    }
    settings = Settings.from_env().model_copy(update=overrides)
    if not settings.cmdb_url:
        raise CLIError("no CMDB remote: set OPSLEDGER_CMDB_URL or pass --cmdb-url")
    api = kube.api_client(settings.kubeconfig)

    async def commit(workdir: str) -> Any:
        # a working copy of its own: a running operator may be using the configured one
        cmdb = cmdb_store(settings.model_copy(update={"cmdb_workdir": workdir, "cmdb_debounce": 0}))
        ctx = Context(
            settings=settings,
            metrics=Metrics(),
            kube=kube.Kube(api),
            cmdb=cmdb,
            prometheus=Prometheus(settings.prometheus_url) if settings.prometheus_url else None,
        )
        try:
            return await write_report(ctx, month)
        finally:
            if cmdb is not None:
                await cmdb.close()

    try:
        with tempfile.TemporaryDirectory(prefix="opsledger-report-") as workdir:
            written = asyncio.run(commit(workdir))
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        api.close()  # type: ignore[no-untyped-call]
    state = "committed" if written.changed else "unchanged"
    print(f"{state} {written.path} ({written.sha[:12]})")
    if args.print:
        print(written.text, end="")
    return 0


def _print_plan(report: dict[str, Any]) -> None:
    print(f"change {report['change']} ({report['type']})")
    window = report.get("window")
    if window is None:
        print("  window:    none (no ServiceLevel for the service)")
    else:
        state = "open now" if window["allowed"] else "closed now"
        print(f"  window:    {state}: {window['reason']}")
        if window.get("next") and window["next"]["start"] not in window["reason"]:
            print(f"             {window['next']['start']} to {window['next']['end']}")
    conflicts = report["conflicts"]
    print(f"  conflicts: {', '.join(c['change'] for c in conflicts) or 'none'}")
    health = report["health"]
    print(
        f"  health:    {health['status']}"
        + (f" ({'; '.join(health['reasons'])})" if health["reasons"] else "")
    )
    risk = report["risk"]
    factors = ", ".join(risk["factors"]) or "no factors"
    print(f"  risk:      {risk['level']} (score {risk['score']}: {factors})")
    if report["blockers"]:
        print("blocked:")
        for blocker in report["blockers"]:
            print(f"  - {blocker}")
    else:
        print("ok: nothing blocks this change")


def _one_manifest(path: Path, kind: str) -> dict[str, object]:
    """The first manifest of `kind` in a YAML file."""
    import yaml  # noqa: PLC0415

    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as exc:
        raise CLIError(f"cannot read {path}: {exc}") from exc
    for doc in docs:
        if doc.get("kind") == kind:
            return doc
    raise CLIError(f"{path} holds no {kind}")


def _validated(model, manifest: dict[str, object], path: Path):  # type: ignore[no-untyped-def]
    """The manifest's spec through its model, or a CLIError naming the fields."""
    from pydantic import ValidationError  # noqa: PLC0415

    from opsledger.domain.validation import describe  # noqa: PLC0415

    try:
        return model.model_validate(manifest.get("spec") or {})
    except ValidationError as exc:
        raise CLIError(f"{path}: {describe(exc)}") from exc


def _moment(text: str):  # type: ignore[no-untyped-def]
    """An RFC 3339 time from the command line (a Z suffix or an offset is required)."""
    from datetime import datetime  # noqa: PLC0415

    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CLIError(f"--at {text!r} is not RFC 3339, e.g. 2026-11-28T22:30:00Z") from exc
    if moment.tzinfo is None:
        raise CLIError(f"--at {text!r} needs a time zone, e.g. 2026-11-28T22:30:00Z")
    return moment


def _environment(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from opsledger.devenv.environment import DevEnvironment  # noqa: PLC0415
    from opsledger.devenv.paths import Toolbox, default_state_dir  # noqa: PLC0415

    return DevEnvironment(args.dir or default_state_dir(), Toolbox.locate())


def _dev_up(args: argparse.Namespace) -> int:
    from opsledger.devenv.paths import ToolMissingError  # noqa: PLC0415
    from opsledger.devenv.processes import StartError  # noqa: PLC0415

    try:
        env = _environment(args)
        env.up()
    except (ToolMissingError, StartError) as exc:
        print(f"opsledger dev up: {exc}", file=sys.stderr)
        return 1
    print(f'Point your shell at it:  eval "$({sys.argv[0]} dev env)"', file=sys.stderr)
    return 0


def _dev_down(args: argparse.Namespace) -> int:
    env = _environment(args)
    stopped = env.down()
    print(f"stopped {len(stopped)} process(es)", file=sys.stderr)
    return 0


def _dev_env(args: argparse.Namespace) -> int:
    env = _environment(args)
    variables = env.env()
    if args.output == "json":
        print(json.dumps({**variables, "PATH_PREPEND": env.path_entries()}, indent=2))
        return 0
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")
    print(f'export PATH={shlex.quote(":".join(env.path_entries()))}:"$PATH"')
    return 0


def _dev_status(args: argparse.Namespace) -> int:
    env = _environment(args)
    rows = env.status()
    if args.output == "json":
        print(json.dumps([row.__dict__ for row in rows], indent=2))
    else:
        print(f"{'COMPONENT':<24} {'PORT':>6} {'PID':>8}  {'HEALTH':<9} LOG")
        for row in rows:
            health = "healthy" if row.healthy else ("running" if row.pid else "stopped")
            pid = str(row.pid) if row.pid else "-"
            print(f"{row.name:<24} {row.port:>6} {pid:>8}  {health:<9} {row.log}")
    return 0 if all(row.healthy for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
