"""Whether a standard change fits its template (`models/standard.py`): its service and target
items, each plan step's target, patch type and every value it sets, and the checks it must
carry. A change that fits is pre-approved; one that does not is proposed as a normal change,
and `misfits` says which part of it left the template.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opsledger.domain.observe import api_group
from opsledger.domain.redaction import Redactor
from opsledger.domain.validation import parse_yaml_file
from opsledger.models.change import ChangeSpec, HealthCheck, PlanStep
from opsledger.models.standard import PlanBounds, StandardTemplate, ValueBound

_SHOWN = Redactor()  # quotes values in misfits as records show them: secrets fingerprinted


class TemplateError(ValueError):
    """The template file cannot be used; the message names the file and the problem."""


def parse_template(path: str, text: str) -> StandardTemplate:
    return parse_yaml_file(
        StandardTemplate, path, text, error=TemplateError, fields="summary, targets, plan, checks"
    )


def _any(value: str, globs: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, g) for g in globs)


def leaves(document: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(JSON pointer, value) of what a merge or apply patch sets. Maps merge, so they are walked
    into; a list replaces the whole list it lands on (JSON merge patch), so it is one value, at
    the list's own pointer: a template must allow replacing that list to let it through."""
    if isinstance(document, Mapping) and document:
        for key, value in document.items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            yield from leaves(value, f"{prefix}/{escaped}")
    else:
        yield prefix or "/", document


def _json_patch_leaves(ops: Any) -> Iterator[tuple[str, Any, str | None]]:
    """(pointer, value, problem) of a JSON patch: add and replace set the value at their path,
    a map or a list as one value there (it replaces what was there, whole); anything else is a
    problem (remove, move, copy and test are not value changes a bound can describe)."""
    for op in ops if isinstance(ops, list) else [ops]:
        if not isinstance(op, Mapping) or op.get("op") not in ("add", "replace"):
            what = op.get("op") if isinstance(op, Mapping) else op
            yield "", None, f"a JSON patch {what!r} operation (only add and replace can fit)"
            continue
        yield str(op.get("path") or ""), op.get("value"), None


def _path_fits(pattern: str, pointer: str) -> bool:
    want, have = pattern.strip("/").split("/"), pointer.strip("/").split("/")
    return len(want) == len(have) and all(w in ("*", h) for w, h in zip(want, have, strict=True))


def _value_fits(bound: ValueBound, value: Any) -> str | None:
    """None when `value` fits the bound, else what it allows."""
    if bound.values is not None and value not in bound.values:
        return f"one of {json.dumps(bound.values)}"
    if bound.pattern is not None and not (
        isinstance(value, str) and re.fullmatch(bound.pattern, value)
    ):
        return f"a string matching {bound.pattern!r}"
    if bound.min is not None or bound.max is not None:
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        low = -math.inf if bound.min is None else bound.min
        high = math.inf if bound.max is None else bound.max
        if number is None or not low <= number <= high:
            return f"a number from {low:g} to {high:g}"
    return None


def _step_misfits(index: int, step: PlanStep, bounds: PlanBounds) -> list[str]:
    ref = step.target
    what = f"plan step {index + 1} ({step.patch_type} patch of {ref.kind} {ref.name})"
    found = []
    if not _any(ref.kind, bounds.kinds):
        found.append(f"{what} targets a {ref.kind}; the template allows {', '.join(bounds.kinds)}")
    if step.patch_type not in bounds.patch_types:
        allowed = ", ".join(str(p) for p in bounds.patch_types)
        found.append(f"{what} is a {step.patch_type} patch; the template allows {allowed}")
    if step.patch_type == "json":
        values = list(_json_patch_leaves(step.patch))
    else:
        values = [(p, v, None) for p, v in leaves(step.patch)]
    for pointer, value, problem in values:
        if problem is not None:
            found.append(f"{what} has {problem}")
            continue
        bounds_here = [b for b in bounds.allow if _path_fits(b.path, pointer)]
        if not bounds_here:
            whole = (
                " (a list or map, which replaces all of it)"
                if isinstance(value, list | Mapping)
                else ""
            )
            found.append(
                f"{what} sets {pointer}{whole}, which the template does not allow to change"
            )
            continue
        refusals = [r for b in bounds_here if (r := _value_fits(b, value)) is not None]
        if len(refusals) == len(bounds_here):
            shown = json.dumps(_SHOWN.patch(value, pointer))  # the message leaves the cluster
            found.append(
                f"{what} sets {pointer} to {shown}; the template allows " + " or ".join(refusals)
            )
    return found


def _checks_missing(template: StandardTemplate, spec: ChangeSpec) -> list[str]:
    if template.checks is None:
        return []
    have = spec.checks
    found = []
    for when, wanted in (("pre", template.checks.pre), ("post", template.checks.post)):
        present: list[HealthCheck] = list(getattr(have, when)) if have else []
        found += [
            f"the {when}-check {c.name} the template requires is missing or differs"
            for c in wanted
            if c not in present
        ]
    if template.checks.no_critical_alerts and have is not None and not have.no_critical_alerts:
        found.append("the template requires checks.noCriticalAlerts")
    return found


def misfits(
    template: StandardTemplate,
    spec: ChangeSpec,
    items: Mapping[str, Mapping[str, Any] | None],
) -> list[str]:
    """What of `spec` leaves `template`, in words; empty: it fits and is pre-approved.

    `items` are the change's target items (None: not found), each with its `class`, `labels`,
    `service` and `source` ({apiVersion, kind, name}).
    """
    bounds = template.targets
    found = []
    if not _any(spec.service, bounds.services):
        found.append(f"service {spec.service} is not one the template covers")
    sources = set()
    for name in spec.targets:
        item = items.get(name)
        if item is None:
            found.append(f"target {name} is not a known ConfigurationItem")
            continue
        if not _any(name, bounds.names):
            found.append(f"target {name} is not one the template covers")
        if not _any(str(item.get("class") or ""), bounds.classes):
            found.append(f"target {name} is a {item.get('class') or 'item of no class'}")
        labels = item.get("labels") or {}
        missing = {k: v for k, v in bounds.labels.items() if labels.get(k) != v}
        if missing:
            found.append(f"target {name} lacks the labels {json.dumps(missing, sort_keys=True)}")
        source = item.get("source") or {}
        sources.add(
            (api_group(str(source.get("apiVersion", ""))), source.get("kind"), source.get("name"))
        )
    if spec.plan and template.plan is None:
        found.append("the change has a plan; the template allows none (a permit only)")
    for index, step in enumerate(spec.plan if template.plan is not None else ()):
        ref = step.target
        if (api_group(ref.api_version), ref.kind, ref.name) not in sources:
            found.append(
                f"plan step {index + 1} patches {ref.kind} {ref.name}, which is not the source "
                "of one of the change's targets"
            )
        assert template.plan is not None
        found += _step_misfits(index, step, template.plan)
    return found + _checks_missing(template, spec)
