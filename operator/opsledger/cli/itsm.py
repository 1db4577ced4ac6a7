"""`kubectl itsm`: OpsLedger as a kubectl plugin (installed with the package as `kubectl-itsm`).

    kubectl itsm status [-n NS | -A]                 services, budgets, open incidents, changes
    kubectl itsm explain CHANGE [-n NS]              why a change waits, in one screen
    kubectl itsm incident open TITLE --service S     report an incident (as you)
    kubectl itsm incident ack|resolve NAME           move it on
    kubectl itsm catalog [-n NS]                     what the service catalog offers here
    kubectl itsm request ITEM --set k=v ...          request a catalog item (as you)
    kubectl itsm calendar [-n NS] [--days N]         windows, blackouts, freezes, changes
    kubectl itsm window SERVICE [-n NS] [--at T]     may a change to SERVICE start now?

It uses your kubeconfig ($KUBECONFIG, or --kubeconfig) and its namespace, as kubectl does, so
RBAC and OpsLedger's webhook see you.
"""

from __future__ import annotations

import argparse
import functools
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opsledger.cli.common import CLIError, dispatch

# The services (and the kubernetes client) load inside the functions: see cli/__init__.py.


def main(argv: list[str] | None = None) -> int:
    return dispatch(_parser(), argv, "kubectl itsm")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl itsm", description="OpsLedger's service management from kubectl."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kubeconfig", help="kubeconfig path (default: $KUBECONFIG)")
    common.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig's)")
    sub = parser.add_subparsers(metavar="COMMAND")
    status = sub.add_parser("status", parents=[common], help="services, budgets, incidents")
    status.add_argument("-A", "--all-namespaces", action="store_true")
    status.set_defaults(func=_status)
    explain = sub.add_parser("explain", parents=[common], help="why a change waits")
    explain.add_argument("change", help="the Change's name")
    explain.set_defaults(func=_explain)
    incident = sub.add_parser("incident", help="open, acknowledge or resolve an incident")
    verbs = incident.add_subparsers(metavar="VERB")
    opened = verbs.add_parser("open", parents=[common], help="report an incident")
    opened.add_argument("title")
    opened.add_argument("--service", required=True)
    opened.add_argument("--impact", choices=["high", "medium", "low"], default="medium")
    opened.add_argument("--urgency", choices=["high", "medium", "low"], default="medium")
    opened.add_argument("--description")
    opened.add_argument("--name", help="the Incident's name (default: from the title)")
    opened.set_defaults(func=_open)
    for verb, state in (("ack", "Acknowledged"), ("resolve", "Resolved")):
        moved = verbs.add_parser(verb, parents=[common], help=f"set it {state}")
        moved.add_argument("name")
        if verb == "resolve":
            moved.add_argument("--resolution", required=True, help="how it was resolved")
        moved.set_defaults(func=_move, state=state)
    offered = sub.add_parser("catalog", parents=[common], help="what the catalog offers here")
    offered.set_defaults(func=_catalog)
    request = sub.add_parser("request", parents=[common], help="request a catalog item")
    request.add_argument("item", help="the catalog item's name (kubectl itsm catalog)")
    request.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter (repeat for each)",
    )
    request.add_argument("--justification", help="why it is needed")
    request.add_argument("--name", help="the ServiceRequest's name (default: from the item)")
    request.set_defaults(func=_request)
    calendar = sub.add_parser("calendar", parents=[common], help="the change calendar")
    calendar.add_argument("--days", type=int, default=14, help="how far ahead (default 14)")
    calendar.set_defaults(func=_calendar)
    window = sub.add_parser("window", parents=[common], help="may a change start now?")
    window.add_argument("service")
    window.add_argument("--at", help="the moment to ask about (RFC 3339; default: now)")
    window.set_defaults(func=_window)
    return parser


def _kube(args: argparse.Namespace) -> Any:
    from opsledger.models.settings import Settings  # noqa: PLC0415
    from opsledger.services import wiring  # noqa: PLC0415

    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    if kubeconfig and not Path(kubeconfig.split(os.pathsep)[0]).is_file():
        raise CLIError(f"no kubeconfig at {kubeconfig}: pass --kubeconfig or set KUBECONFIG")
    ctx = wiring.cli_context(Settings(kubeconfig=kubeconfig), with_kube=True, with_prometheus=False)
    return ctx.kube


def _namespace(args: argparse.Namespace) -> str:
    """-n, else the namespace of the kubeconfig's current context, else default."""
    if args.namespace:
        return str(args.namespace)
    import yaml  # noqa: PLC0415

    path = args.kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube/config")
    try:
        config = yaml.safe_load(Path(path.split(os.pathsep)[0]).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "default"
    current = config.get("current-context")
    for c in config.get("contexts") or []:
        if c.get("name") == current:
            return str((c.get("context") or {}).get("namespace") or "default")
    return "default"


def _run(fn: Any, *args: Any) -> Any:
    from opsledger.services.itsm import RefusedError  # noqa: PLC0415

    try:
        return fn(*args)
    except RefusedError as exc:
        raise CLIError(f"refused: {exc}", 1) from exc
    except (LookupError, FileExistsError) as exc:
        raise CLIError(str(exc), 1) from exc
    except ValueError as exc:
        raise CLIError(str(exc), 2) from exc


def _percent(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _status(args: argparse.Namespace) -> int:
    from opsledger.services import itsm  # noqa: PLC0415

    namespace = None if args.all_namespaces else _namespace(args)
    rows = _run(itsm.status, _kube(args), namespace)
    if not rows:
        print(f"no ServiceLevels{'' if namespace is None else f' in {namespace}'}")
        return 0
    header = ("NAMESPACE", "SERVICE", "OBJECTIVE", "SLI %", "BUDGET", "OPEN INCIDENTS", "CHANGES")
    table = [header]
    for r in rows:
        incidents = ", ".join(f"{p}: {n}" for p, n in r.open_incidents.items()) or "none"
        running = ", ".join(r.changes_running) or "–"
        for i, (name, sli, budget) in enumerate(r.objectives or [("–", None, None)]):
            first = i == 0
            table.append(
                (
                    r.namespace if first else "",
                    r.service if first else "",
                    name,
                    _percent(sli, 3),
                    "–" if budget is None else f"{budget:.0%}",
                    incidents if first else "",
                    running if first else "",
                )
            )
    widths = [max(len(row[c]) for row in table) for c in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _explain(args: argparse.Namespace) -> int:
    from opsledger.services import itsm  # noqa: PLC0415

    namespace = _namespace(args)
    lines = _run(itsm.explain_change, _kube(args), namespace, args.change)
    print(f"Change {namespace}/{args.change}")
    width = max(len(line.gate) for line in lines)
    for line in lines:
        print(f"  {line.gate.ljust(width)}  {line.verdict.upper():8} {line.message}")
    blocked = [line.gate for line in lines if line.verdict in ("blocked", "waiting")]
    print(f"waiting for: {', '.join(blocked)}" if blocked else "nothing holds it")
    return 0


def _open(args: argparse.Namespace) -> int:
    from opsledger.domain.desk import incident_name  # noqa: PLC0415
    from opsledger.services import itsm  # noqa: PLC0415

    namespace = _namespace(args)
    name = args.name or incident_name(args.title, datetime.now(UTC))
    spec = {
        "title": args.title,
        "service": args.service,
        "impact": args.impact,
        "urgency": args.urgency,
        "description": args.description,
        "state": "New",
        "origin": {"type": "manual", "reference": "kubectl itsm"},
    }
    _run(itsm.open_incident, _kube(args), namespace, name, spec)
    print(f"incident.opsledger.io/{name} opened in {namespace}")
    return 0


def _move(args: argparse.Namespace) -> int:
    from opsledger.services import itsm  # noqa: PLC0415

    namespace = _namespace(args)
    resolution = getattr(args, "resolution", None)
    _run(itsm.move_incident, _kube(args), namespace, args.name, args.state, resolution)
    print(f"incident.opsledger.io/{args.name} {args.state.lower()}")
    return 0


def _catalog(args: argparse.Namespace) -> int:
    from opsledger.services import itsm  # noqa: PLC0415

    namespace = _namespace(args)
    found = _run(itsm.offered, _kube(args), namespace)
    if not found:
        print(f"the catalog offers nothing in {namespace}")
        return 0
    for service, item in found:
        how = "by a standard change" if item.get("fulfilledBy") == "change" else "by a person"
        print(f"{item.get('name')}  ({service}, {how}): {item.get('title')}")
        for p in item.get("parameters") or ():
            bounds = [f"{k} {p[k]}" for k in ("min", "max", "pattern") if p.get(k) is not None] + (
                [f"one of {', '.join(map(str, p['values']))}"] if p.get("values") else []
            )
            optional = "" if p.get("required", True) and p.get("default") is None else ", optional"
            extra = f"; {'; '.join(bounds)}" if bounds else ""
            print(f"    --set {p.get('name')}=…  ({p.get('type', 'string')}{optional}{extra})")
    return 0


def _request(args: argparse.Namespace) -> int:
    from opsledger.domain.desk import request_name  # noqa: PLC0415
    from opsledger.services import itsm  # noqa: PLC0415

    parameters = {}
    for pair in args.set:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--set {pair}: give NAME=VALUE", 2)
        parameters[key] = value
    namespace = _namespace(args)
    kube = _kube(args)
    offers = [
        item for _, item in _run(itsm.offered, kube, namespace) if item.get("name") == args.item
    ]
    if offers:  # said here at once; the operator checks again against the item in Git
        problems = _run(itsm.misfits, offers[0], parameters)
        if problems:
            raise CLIError(f"{args.item}: {'; '.join(problems)}", 2)
    name = args.name or request_name(args.item, datetime.now(UTC))
    make = functools.partial(itsm.make_request, why=args.justification)
    _run(make, kube, namespace, name, args.item, parameters)
    print(f"servicerequest.opsledger.io/{name} requested in {namespace}")
    print(f"follow it with: kubectl get sr {name} -n {namespace} -w")
    return 0


def _calendar(args: argparse.Namespace) -> int:
    from opsledger.services import itsm  # noqa: PLC0415

    namespace = _namespace(args)
    since = datetime.now(UTC)
    rows = _run(itsm.calendar, _kube(args), namespace, since, since + timedelta(days=args.days))
    print(f"{'START':<21}{'END':<21}{'SERVICE':<16}{'KIND':<10}WHAT")
    for service, entry in rows:
        shown = entry.to_json()
        print(f"{shown['start']:<21}{shown['end']:<21}{service:<16}{entry.kind:<10}{entry.what}")
    print("(shared calendars are in the CMDB: the operator's /v1/calendar.ics has their events)")
    return 0


def _window(args: argparse.Namespace) -> int:
    from opsledger.cli.common import moment  # noqa: PLC0415
    from opsledger.domain.times import rfc3339  # noqa: PLC0415
    from opsledger.domain.windows import decide  # noqa: PLC0415
    from opsledger.services import itsm  # noqa: PLC0415

    namespace = _namespace(args)
    spec = _run(itsm.service_level, _kube(args), namespace, args.service)
    at = moment(args.at) if args.at else datetime.now(UTC)
    decision = decide(
        at, windows=spec.maintenance_windows, freezes=spec.freezes, blackouts=spec.blackouts
    )
    verdict = "allowed" if decision.allowed else "not allowed"
    print(f"{args.service}: {verdict} at {rfc3339(at)} ({decision.rule}): {decision.reason}")
    if decision.next:
        label = "window" if decision.allowed else "next"
        print(f"{label}: {rfc3339(decision.next.start)} to {rfc3339(decision.next.end)}")
    if spec.calendars:
        names = ", ".join(c.name for c in spec.calendars)
        print(f"also held by the shared calendars {names} (in the CMDB; the operator reads them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
