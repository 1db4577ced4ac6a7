"""opsledger report: the monthly service review, committed to the CMDB."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from typing import Any

from opsledger.cli.common import CLIError, close_kube

# asyncio, tempfile, opsledger's domain, models, use cases and wiring load inside the
# function: see cli/__init__.py.


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _report(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from opsledger.domain.report import month_bounds, previous_month  # noqa: PLC0415
    from opsledger.models.settings import Settings  # noqa: PLC0415
    from opsledger.services.report import write_report  # noqa: PLC0415
    from opsledger.services.wiring import cli_context  # noqa: PLC0415  (kubernetes, git)

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

    async def commit(workdir: str) -> Any:
        # a working copy of its own: a running operator may be using the configured one
        ctx = cli_context(
            settings.model_copy(update={"cmdb_workdir": workdir, "cmdb_debounce": 0}),
            with_kube=True,
            with_prometheus=True,
            with_cmdb=True,
        )
        try:
            return await write_report(ctx, month)
        finally:
            if ctx.cmdb is not None:
                await ctx.cmdb.close()
            close_kube(ctx)

    try:
        with tempfile.TemporaryDirectory(prefix="opsledger-report-") as workdir:
            written = asyncio.run(commit(workdir))
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    state = "committed" if written.changed else "unchanged"
    print(f"{state} {written.path} ({written.sha[:12]})")
    if args.print:
        print(written.text, end="")
    return 0
