"""The service catalog (`models/request.py`): reading an item, accepting a request's parameters
against its types and bounds, making the Change that fulfils it, and the request's phase as
that Change moves on.

The Change is made from the item's skeleton, reviewed by pull request like every policy file.
A request's parameters are values, never templates: they are typed and bounded here first, and
a string the skeleton holds is filled in by Jinja2's sandbox, which a value cannot escape. The
Change made is then held to the item's standard-change template by the same rules as one written
by hand (`domain/standard_changes.py`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from opsledger.domain.validation import parse_yaml_file
from opsledger.models.change import ChangePhase
from opsledger.models.request import (
    CATALOG_DIR,
    CatalogItem,
    CatalogParameter,
    ParameterType,
    RequestPhase,
    RequestTarget,
)

Value = str | int | float | bool

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_WHOLE = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}

# The change's phase → the request's.
_PHASES = {
    ChangePhase.PENDING_APPROVAL: RequestPhase.WAITING_FOR_APPROVAL,
    ChangePhase.APPROVED: RequestPhase.SCHEDULED,
    ChangePhase.SCHEDULED: RequestPhase.SCHEDULED,
    ChangePhase.IN_PROGRESS: RequestPhase.IN_FULFILMENT,
    ChangePhase.VERIFYING: RequestPhase.IN_FULFILMENT,
    ChangePhase.COMPLETED: RequestPhase.FULFILLED,
    ChangePhase.REJECTED: RequestPhase.REJECTED,
    ChangePhase.FAILED: RequestPhase.FAILED,
    ChangePhase.ROLLED_BACK: RequestPhase.FAILED,
    ChangePhase.CANCELLED: RequestPhase.CANCELLED,
}


class CatalogError(ValueError):
    """The catalog item cannot be used; the message names the file and the problem."""


def item_path(name: str) -> str:
    return f"{CATALOG_DIR}/{name}.yaml"


def parse_item(path: str, text: str) -> CatalogItem:
    item = parse_yaml_file(
        CatalogItem,
        path,
        text,
        error=CatalogError,
        fields="title, description, service, approval, parameters, fulfilment",
    )
    for parameter in item.parameters:
        if parameter.pattern is not None:
            try:
                re.compile(parameter.pattern)
            except re.error as exc:
                raise CatalogError(
                    f"{path} is invalid: parameter {parameter.name}'s pattern: {exc}"
                ) from exc
        if parameter.default is not None:
            _, problem = _accept_one(parameter, parameter.default)
            if problem:
                raise CatalogError(f"{path} is invalid: its default {problem}")
    if item.fulfilment is not None:
        try:
            _strings(item.fulfilment.change, _check_syntax)
        except TemplateError as exc:
            raise CatalogError(f"{path} is invalid: fulfilment.change: {exc}") from exc
    return item


def _check_syntax(text: str) -> str:
    _ENV.parse(text)
    return text


def _as_boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    return True if text in _TRUE else False if text in _FALSE else None


def _as_integer(value: Any) -> int | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?[0-9]{1,18}\s*", value):
        return int(value)
    return None


def _as_number(value: Any) -> float | None:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    return number if number is not None and math.isfinite(number) else None


_COERCE: dict[ParameterType, Any] = {
    ParameterType.STRING: lambda v: v if isinstance(v, str) else None,
    ParameterType.BOOLEAN: _as_boolean,
    ParameterType.INTEGER: _as_integer,
    ParameterType.NUMBER: _as_number,
}


def _outside(parameter: CatalogParameter, value: Value, shown: str) -> str | None:
    """What of the parameter's bounds `value` (of its type) breaks, or None."""
    if parameter.values is not None and value not in parameter.values:
        return f"{shown} is not one of {', '.join(repr(v) for v in parameter.values)}"
    if isinstance(value, str):
        return _outside_text(parameter, value, shown)
    if not isinstance(value, bool):
        if parameter.min is not None and value < parameter.min:
            return f"{shown} is below the minimum {parameter.min:g}"
        if parameter.max is not None and value > parameter.max:
            return f"{shown} is above the maximum {parameter.max:g}"
    return None


def _outside_text(parameter: CatalogParameter, value: str, shown: str) -> str | None:
    if len(value) > parameter.max_length:
        return f"longer than {parameter.max_length} characters"
    if parameter.min_length is not None and len(value) < parameter.min_length:
        return f"shorter than {parameter.min_length} characters"
    if parameter.pattern is not None and not re.fullmatch(parameter.pattern, value):
        return f"{shown} does not match {parameter.pattern!r}"
    return None


def _accept_one(parameter: CatalogParameter, given: Any) -> tuple[Value | None, str | None]:
    """`given` as the parameter's typed value, or what is wrong with it."""
    value: Value | None = _COERCE[parameter.type](given)
    shown = repr(given)[:80]
    if value is None:
        article = "an" if parameter.type == ParameterType.INTEGER else "a"
        return None, f"{parameter.name}: {shown} is not {article} {parameter.type}"
    problem = _outside(parameter, value, shown)
    return (None, f"{parameter.name}: {problem}") if problem else (value, None)


def accept(item: CatalogItem, given: Mapping[str, Any]) -> tuple[dict[str, Value], list[str]]:
    """The request's parameters typed, bounded and defaulted, and what is wrong with them."""
    known = {p.name: p for p in item.parameters}
    problems = [
        f"{name}: the item has no such parameter (it has {', '.join(known) or 'none'})"
        for name in given
        if name not in known
    ]
    values: dict[str, Value] = {}
    for name, parameter in known.items():
        raw = given.get(name)
        if raw is None or raw == "":
            if parameter.default is not None:
                values[name] = parameter.default
            elif parameter.required:
                problems.append(f"{name}: required")
            continue
        value, problem = _accept_one(parameter, raw)
        if problem is not None:
            problems.append(problem)
        elif value is not None:
            values[name] = value
    return values, problems


def _strings(node: Any, fill: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _strings(v, fill) for k, v in node.items()}
    if isinstance(node, list):
        return [_strings(v, fill) for v in node]
    if isinstance(node, str):
        return fill(node)
    return node


def render_change(
    item: CatalogItem, item_name: str, request: str, values: Mapping[str, Value]
) -> dict[str, Any]:
    """The spec of the Change that fulfils `request` for `item` with `values`: standard under
    the item's template when it needs no approval, normal (approved by merge) when it does."""
    assert item.fulfilment is not None

    def fill(text: str) -> Any:
        whole = _WHOLE.match(text)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        return _ENV.from_string(text).render(**values)

    try:
        spec: dict[str, Any] = _strings(item.fulfilment.change, fill)
    except TemplateError as exc:
        raise CatalogError(f"{item_path(item_name)}: fulfilment.change: {exc}") from exc
    for key in ("type", "template", "requester", "onBehalfOf", "cancelled", "freezeException"):
        spec.pop(key, None)
    spec.setdefault("summary", f"{item.title} (service request {request})")
    if item.service:
        spec.setdefault("service", item.service)
    if item.approval == "none":
        spec.update(type="standard", template=item.fulfilment.template)
    else:
        spec["type"] = "normal"
    return spec


def phase_of(change_phase: str | None) -> RequestPhase:
    """The request's phase while its change is in `change_phase`."""
    if change_phase is None:
        return RequestPhase.SUBMITTED
    try:
        return _PHASES[ChangePhase(change_phase)]
    except ValueError:
        return RequestPhase.SUBMITTED


def fulfil_target(targets: Sequence[RequestTarget | Mapping[str, Any]], item: str) -> str | None:
    """The fulfilment duration of the first target matching `item`, or None."""
    for target in targets:
        glob = target.item if isinstance(target, RequestTarget) else target.get("item", "*")
        fulfil = target.fulfil if isinstance(target, RequestTarget) else target.get("fulfil")
        if fnmatch.fnmatchcase(item, str(glob or "*")) and fulfil:
            return str(fulfil)
    return None
