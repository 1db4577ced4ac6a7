"""opsledger run: the operator."""

from __future__ import annotations

import argparse
import sys


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _run(args: argparse.Namespace) -> int:
    # Lazy: opsledger.main loads kopf, kubernetes and every handler (about a second).
    from opsledger import main as operator_main  # noqa: PLC0415
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
