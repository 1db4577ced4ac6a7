"""The `opsledger` command: entry points only, no logic. One module per command group.

Each command module has `add(sub)`, which registers its subcommands, and the functions they
call. `opsledger --help` imports every one of them and takes about 40 ms, so their module level
imports only the standard library: pydantic and yaml, opsledger's models and domain (100-300
ms), the use cases and the wiring in opsledger.main (kopf, kubernetes: about a second) are
imported inside the command functions that need them.
"""

from __future__ import annotations

import argparse

from opsledger import __version__
from opsledger.cli import change, cmdb, crds, desk, dev, report, run, slo, window
from opsledger.cli.common import CLIError, dispatch

__all__ = ["CLIError", "main"]


def main(argv: list[str] | None = None) -> int:
    return dispatch(_parser(), argv, "opsledger")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opsledger",
        description="IT service and operations management native to Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"opsledger {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")
    for group in (run, crds, cmdb, slo, window, change, report, desk, dev):
        group.add(sub)
    return parser
