"""opsledger change plan: what the operator would decide about a Change, without applying it."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsledger.cli.common import close_kube, moment, one_manifest, print_json, validated

# asyncio, opsledger's models, use cases and wiring load inside the function: see
# cli/__init__.py.


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    plan.add_argument(
        "--template",
        type=Path,
        help="a standard change's template (standard-changes/<name>.yaml of a CMDB checkout): "
        "say whether the manifest fits it, and so is pre-approved",
    )
    plan.add_argument("-o", "--output", choices=["text", "json"], default="text")
    plan.set_defaults(func=_plan)


def _plan(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    from opsledger.models.change import ChangeSpec  # noqa: PLC0415
    from opsledger.models.settings import Settings  # noqa: PLC0415
    from opsledger.services.change_approval import template_fit  # noqa: PLC0415
    from opsledger.services.change_assessment import plan  # noqa: PLC0415
    from opsledger.services.wiring import cli_context  # noqa: PLC0415  (kubernetes, git)

    manifest = one_manifest(args.file, "Change")
    spec = validated(ChangeSpec, manifest, args.file)
    meta = manifest.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    namespace = args.namespace or str(meta.get("namespace") or "default")
    url = args.prometheus or os.environ.get("OPSLEDGER_PROMETHEUS_URL")
    at = moment(args.at) if args.at else datetime.now(UTC)
    settings = Settings(
        kubeconfig=args.kubeconfig or os.environ.get("KUBECONFIG"), prometheus_url=url
    )
    ctx = cli_context(settings, with_kube=True, with_prometheus=True)
    assert ctx.kube is not None
    try:
        report = asyncio.run(
            plan(
                ctx.kube,
                ctx.prometheus,
                namespace=namespace,
                name=str(meta.get("name") or args.file.stem),
                spec=spec,
                now=at,
            )
        )
        if args.template is not None:
            fit = template_fit(ctx, spec, namespace, args.template.as_posix(), args.template)
            report["template"] = {"path": args.template.as_posix(), "misfits": fit}
    finally:
        close_kube(ctx)
    if args.output == "json":
        print_json(report)
    else:
        _print_plan(report)
    return 0 if report["ok"] else 1


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
    template = report.get("template")
    if template is not None:
        if template["misfits"]:
            print(f"  template:  leaves {template['path']}: proposed as a normal change")
            for misfit in template["misfits"]:
                print(f"             - {misfit}")
        else:
            print(f"  template:  fits {template['path']}: pre-approved")
    if report["blockers"]:
        print("blocked:")
        for blocker in report["blockers"]:
            print(f"  - {blocker}")
    else:
        print("ok: nothing blocks this change")
