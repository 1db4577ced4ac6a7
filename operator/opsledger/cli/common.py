"""What the command modules share: the one-line error, reading manifests, times, JSON."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

    from opsledger.services.context import Context

# yaml, pydantic and opsledger's models load inside the functions: see cli/__init__.py.

M = TypeVar("M", bound="BaseModel")


class CLIError(Exception):
    """A problem to report in one line, with the exit status to use."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None, prog: str) -> int:
    """Parse `argv`, run the chosen command, and print a CLIError as one line under `prog`."""
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except CLIError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.code
    return code


def manifests(path: Path, kind: str) -> list[dict[str, Any]]:
    """Every manifest of `kind` in a YAML file (a CLIError when there is none)."""
    import yaml  # noqa: PLC0415

    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as exc:
        raise CLIError(f"cannot read {path}: {exc}") from exc
    found = [d for d in docs if d.get("kind") == kind]
    if not found:
        raise CLIError(f"{path} holds no {kind}")
    return found


def one_manifest(path: Path, kind: str) -> dict[str, Any]:
    """The first manifest of `kind` in a YAML file."""
    return manifests(path, kind)[0]


def validated(model: type[M], manifest: dict[str, object], path: Path) -> M:
    """The manifest's spec through its model, or a CLIError naming the fields."""
    from pydantic import ValidationError  # noqa: PLC0415

    from opsledger.domain.validation import describe  # noqa: PLC0415

    try:
        return model.model_validate(manifest.get("spec") or {})
    except ValidationError as exc:
        raise CLIError(f"{path}: {describe(exc)}") from exc


def moment(text: str) -> datetime:
    """An RFC 3339 time from the command line (a Z suffix or an offset is required); the other
    ISO 8601 forms people write pass too (a space for the T, no seconds, 20261128T2230Z)."""
    from opsledger.domain.times import parse_time  # noqa: PLC0415

    at = parse_time(text, naive=None)
    if at is None:
        raise CLIError(f"--at {text!r} is not RFC 3339, e.g. 2026-11-28T22:30:00Z")
    if at.tzinfo is None:
        raise CLIError(f"--at {text!r} needs a time zone, e.g. 2026-11-28T22:30:00Z")
    return at


def print_json(value: object, *, indent: int | None = 2) -> None:
    print(json.dumps(value, indent=indent))


def close_kube(ctx: Context) -> None:
    """Close the Kubernetes client of a command's Context, when it has one."""
    if ctx.kube is not None:
        ctx.kube.api.close()  # type: ignore[no-untyped-call]
