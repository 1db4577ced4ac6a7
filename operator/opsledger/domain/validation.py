"""Turn pydantic validation errors into messages a user can act on, and read a YAML file of
the CMDB repository into its model with such a message."""

from __future__ import annotations

from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def describe(error: ValidationError, root: str = "spec") -> str:
    """One line per problem, each naming the field by its path as written in the manifest."""
    lines = []
    for item in error.errors():
        parts = [_short(str(p)) for p in item["loc"]]
        path = ".".join([root, *parts] if root else parts)
        message = _short(str(item["msg"]).removeprefix("Value error, "), 500)
        lines.append(f"{path}: {message}")
        if len(lines) == MAX_PROBLEMS:
            lines.append(f"and {len(error.errors()) - MAX_PROBLEMS} more")
            break
    return "; ".join(lines)


MAX_PROBLEMS = 10  # a manifest wrong everywhere is told its first ten problems


def _short(text: str, limit: int = 64) -> str:
    """A field name (or message) as a person can read it: a hostile 70,000-character key is
    cut, not echoed back whole."""
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def parse_yaml_file(
    model: type[M], path: str, text: str, *, error: type[ValueError], fields: str
) -> M:
    """The file `path` holding `text` as a `model`, or `error` naming the file and what is
    wrong with it (`fields` names the top-level keys a mapping of it has)."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise error(f"{path} is not YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise error(f"{path} must be a mapping ({fields})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{path} is invalid: {describe(exc)}") from exc
