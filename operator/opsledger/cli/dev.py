"""opsledger dev up|down|env|status: the local environment."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from opsledger.cli.common import print_json

if TYPE_CHECKING:
    from opsledger.devenv.environment import DevEnvironment

# opsledger.devenv loads inside the functions (yaml, cryptography, subprocess: ~60 ms): see
# cli/__init__.py.


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = sub.add_parser("dev", help="the local environment (control plane, Prometheus, CMDB)")
    dev.add_argument("--dir", type=Path, help="state folder (default: .dev/ in the checkout)")
    dev_sub = dev.add_subparsers(metavar="ACTION", required=True)
    dev_sub.add_parser("up", help="start everything, return when healthy").set_defaults(func=_up)
    dev_sub.add_parser("down", help="stop the processes `up` started").set_defaults(func=_down)
    dev_env = dev_sub.add_parser("env", help="print export lines for a shell")
    dev_env.add_argument("-o", "--output", choices=["shell", "json"], default="shell")
    dev_env.set_defaults(func=_env)
    dev_status = dev_sub.add_parser("status", help="each component, its port, PID and health")
    dev_status.add_argument("-o", "--output", choices=["table", "json"], default="table")
    dev_status.set_defaults(func=_status)


def _environment(args: argparse.Namespace) -> DevEnvironment:
    from opsledger.devenv.environment import DevEnvironment  # noqa: PLC0415
    from opsledger.devenv.paths import Toolbox, default_state_dir  # noqa: PLC0415

    return DevEnvironment(args.dir or default_state_dir(), Toolbox.locate())


def _up(args: argparse.Namespace) -> int:
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


def _down(args: argparse.Namespace) -> int:
    env = _environment(args)
    stopped = env.down()
    print(f"stopped {len(stopped)} process(es)", file=sys.stderr)
    return 0


def _env(args: argparse.Namespace) -> int:
    env = _environment(args)
    variables = env.env()
    if args.output == "json":
        print_json({**variables, "PATH_PREPEND": env.path_entries()})
        return 0
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")
    print(f'export PATH={shlex.quote(":".join(env.path_entries()))}:"$PATH"')
    return 0


def _status(args: argparse.Namespace) -> int:
    env = _environment(args)
    rows = env.status()
    if args.output == "json":
        print_json([row.__dict__ for row in rows])
    else:
        print(f"{'COMPONENT':<24} {'PORT':>6} {'PID':>8}  {'HEALTH':<9} LOG")
        for row in rows:
            health = "healthy" if row.healthy else ("running" if row.pid else "stopped")
            pid = str(row.pid) if row.pid else "-"
            print(f"{row.name:<24} {row.port:>6} {pid:>8}  {health:<9} {row.log}")
    return 0 if all(row.healthy for row in rows) else 1
