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
        path = (
            ".".join([root, *(str(p) for p in item["loc"])])
            if root
            else ".".join(str(p) for p in item["loc"])
        )
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{path}: {message}")
    return "; ".join(lines)


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
