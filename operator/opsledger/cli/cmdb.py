"""opsledger cmdb validate|impact: a CMDB checkout's records, and what depends on an item."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from opsledger.cli.common import close_kube, print_json

# opsledger's domain, models and wiring load inside the functions: see cli/__init__.py.


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmdb = sub.add_parser("cmdb", help="work with a CMDB repository checkout")
    cmdb_sub = cmdb.add_subparsers(metavar="ACTION", required=True)
    validate = cmdb_sub.add_parser(
        "validate", help="check every record parses, matches its schema and sits at its path"
    )
    validate.add_argument("directory", nargs="?", default=".", type=Path, help="the checkout")
    validate.add_argument("-o", "--output", choices=["text", "json"], default="text")
    validate.set_defaults(func=_validate)

    impact = cmdb_sub.add_parser(
        "impact", help="what depends on a configuration item, transitively, as a tree"
    )
    impact.add_argument("item", help="the ConfigurationItem's name (or namespace/name)")
    impact.add_argument("-n", "--namespace", default="default", help="its namespace")
    impact.add_argument("--kubeconfig", help="kubeconfig path (default: $KUBECONFIG)")
    impact.add_argument("-o", "--output", choices=["tree", "json"], default="tree")
    impact.set_defaults(func=_impact)


def _validate(args: argparse.Namespace) -> int:
    from opsledger.domain.validate import validate_tree  # noqa: PLC0415

    root: Path = args.directory
    files = sorted((root / "clusters").rglob("*.yaml")) if (root / "clusters").is_dir() else []
    files += sorted((root / "standard-changes").glob("*.yaml"))
    files += sorted((root / "catalog").glob("*.yaml"))
    files += [root / "approval-policy.yaml"] if (root / "approval-policy.yaml").is_file() else []
    files += sorted((root / "calendars").glob("*.ics"))
    problems = validate_tree(
        (p.relative_to(root).as_posix(), p.read_text(errors="replace")) for p in files
    )
    if args.output == "json":
        print_json({"records": len(files), "problems": [p.__dict__ for p in problems]}, indent=None)
    else:
        for problem in problems:
            print(problem, file=sys.stderr)
        verdict = f"{len(problems)} problem(s)" if problems else "all valid"
        print(f"{len(files)} record(s) checked in {root}: {verdict}")
    return 1 if problems else 0


def _impact(args: argparse.Namespace) -> int:
    from opsledger.domain.impact import ImpactGraph, ImpactNode, render_tree  # noqa: PLC0415
    from opsledger.models.settings import Settings  # noqa: PLC0415
    from opsledger.services.wiring import cli_context  # noqa: PLC0415  (kubernetes, git)

    item = args.item if "/" in args.item else f"{args.namespace}/{args.item}"
    settings = Settings(kubeconfig=args.kubeconfig or os.environ.get("KUBECONFIG"))
    ctx = cli_context(settings, with_kube=True, with_prometheus=False)
    assert ctx.kube is not None
    try:
        items = ctx.kube.list_custom("configurationitems")
    finally:
        close_kube(ctx)
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
        print_json(
            {
                "item": item,
                "count": len(dependents),
                "dependents": dependents,
                "tree": as_dict(tree),
            }
        )
    else:
        print(render_tree(tree, labels))
    return 0
