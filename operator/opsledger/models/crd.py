"""Generate CustomResourceDefinitions from the pydantic models.

The models are the single source of truth: `opsledger crds` writes `crds/*.yaml` from them and a
test fails when the checked-in files differ. Kubernetes wants a *structural* OpenAPI v3 schema, so
pydantic's JSON Schema is rewritten: references inlined, `X | None` collapsed to `X`, JSON Schema
2020 numeric bounds turned into OpenAPI v3's, and titles dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel

from opsledger.models.common import API_GROUP, API_VERSION, CATEGORY

READY = '.status.conditions[?(@.type=="Ready")]'


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str | None = None

    def render(self) -> dict[str, Any]:
        col: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.format:
            col["format"] = self.format
        if self.description:
            col["description"] = self.description
        if self.priority:
            col["priority"] = self.priority
        return col


@dataclass(frozen=True)
class KindInfo:
    """Names and presentation of one custom resource kind."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[PrinterColumn, ...] = field(default_factory=tuple)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{API_GROUP}"


def ready_columns() -> tuple[PrinterColumn, ...]:
    return (
        PrinterColumn("Ready", f"{READY}.status", description="Whether the object is usable."),
        PrinterColumn("Reason", f"{READY}.reason", priority=1, description="Why."),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    )


_NUMERIC_BOUNDS = {"exclusiveMinimum": "minimum", "exclusiveMaximum": "maximum"}
_DROP = {"title", "$defs", "discriminator"}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema rewritten into a Kubernetes structural schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = raw.get("$defs", {})
    schema: dict[str, Any] = _rewrite(raw, defs)
    return schema


def _rewrite(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").split("/")[-1]]
        node = {**target, **node}  # a field's own description/default win over the model's
    for union in ("anyOf", "oneOf"):
        if union in node:
            options = [o for o in node.pop(union) if o.get("type") != "null"]
            if len(options) != 1:
                raise ValueError(f"unions are not structural: {options}")
            node = {**options[0], **node}
            if "$ref" in node:
                return _rewrite(node, defs)
    if node.get("default", ...) is None:
        del node["default"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_rewrite_keyword(key, value, defs))
    if out.get("x-kubernetes-preserve-unknown-fields") and out.get("type") == "object":
        out.pop("additionalProperties", None)
    # Canonical key order (properties keep the models' field order) so the files diff cleanly.
    return {key: out[key] for key in sorted(out)}


def _rewrite_keyword(key: str, value: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """One keyword of a schema node, in its structural form (empty when it is dropped)."""
    if key in _DROP or (key == "additionalProperties" and value in (True, False, {})):
        return {}  # dropped; "any value" is said with x-kubernetes-preserve-unknown-fields
    if key in _NUMERIC_BOUNDS and not isinstance(value, bool):
        return {_NUMERIC_BOUNDS[key]: value, key: True}
    if key == "properties":
        return {key: {name: _rewrite(sub, defs) for name, sub in value.items()}}
    if key in ("items", "not", "allOf", "additionalProperties"):
        return {key: _rewrite(value, defs)}
    return {key: value}


def render_crd(info: KindInfo) -> dict[str, Any]:
    """The complete CustomResourceDefinition for one kind."""
    spec_schema = structural_schema(info.spec)
    spec_schema["description"] = info.spec.__doc__ or spec_schema.get("description", "")
    status_schema = structural_schema(info.status)
    status_schema["description"] = info.status.__doc__ or status_schema.get("description", "")
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": info.crd_name,
            "labels": {"app.kubernetes.io/part-of": "opsledger"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.render() for c in info.columns],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": info.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared sub-objects out in full: CRDs are read by people, not just parsers."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_NoAliasDumper, sort_keys=False, width=100)


def crd_files(kinds: tuple[KindInfo, ...]) -> dict[str, str]:
    """File name → YAML text of every CRD, as checked in under `crds/`."""
    header = "# Generated by `opsledger crds` from operator/opsledger/models. Do not edit.\n"
    return {f"{API_GROUP}_{k.plural}.yaml": header + dump_yaml(render_crd(k)) for k in kinds}
