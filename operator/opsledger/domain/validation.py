"""Turn pydantic validation errors into messages a user can act on."""

from __future__ import annotations

from pydantic import ValidationError


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
