"""opsledger crds: the CustomResourceDefinitions, generated from the models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _crds(args: argparse.Namespace) -> int:
    # Lazy: the models load pydantic, yaml and croniter (over 100 ms); see cli/__init__.py.
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
