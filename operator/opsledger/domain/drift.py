"""Drift: a declared attribute whose observed value differs."""

from __future__ import annotations

from typing import Any

_MISSING = object()


def lookup(observed: dict[str, Any], key: str) -> Any:
    """The observed value at `key`, which may be a dotted path such as images.app."""
    node: Any = observed
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _same(declared: Any, observed: Any) -> bool:
    if isinstance(declared, dict | list) or isinstance(observed, dict | list):
        return bool(declared == observed)
    return str(declared) == str(observed)  # 2 and "2" are the same replica count


def drifted(declared: dict[str, Any], observed: dict[str, Any]) -> list[str]:
    """Declared attribute keys whose observed value differs (unobserved keys are not drift)."""
    result = []
    for key, want in declared.items():
        have = lookup(observed, key)
        if have is not _MISSING and not _same(want, have):
            result.append(key)
    return sorted(result)
