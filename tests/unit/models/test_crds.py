"""crds/ is generated from the models; these tests keep the two in step and the schemas sound."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from opsledger.models import KINDS
from opsledger.models.crd import crd_files, render_crd

ROOT = Path(__file__).resolve().parents[3]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.get("properties", {}).items():
            found += _walk(value, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            found += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_checked_in_crds_match_the_models() -> None:
    generated = crd_files(KINDS)
    on_disk = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.yaml")}
    assert on_disk.keys() == generated.keys()
    stale = [name for name, text in generated.items() if on_disk[name] != text]
    assert not stale, f"crds/ is stale, run `opsledger crds`: {stale}"


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_schemas_are_structural_and_described(info: Any) -> None:
    crd = render_crd(info)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    assert "$ref" not in text
    assert "anyOf" not in text
    assert "title" not in schema
    for path, node in _walk(schema["properties"]["spec"], "spec"):
        assert node.get("description"), f"{info.kind} {path} has no description"
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_names_short_names_and_category(info: Any) -> None:
    names = render_crd(info)["spec"]["names"]
    assert names["categories"] == ["itsm"]
    assert names["shortNames"] == list(info.short_names)
    version = render_crd(info)["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert "Ready" in columns
    assert columns[-1] == "Age"


def test_change_window_rule_points_at_not_after() -> None:
    crd = render_crd(next(k for k in KINDS if k.kind == "Change"))
    schedule = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["schedule"]
    [rule] = schedule["x-kubernetes-validations"]
    assert rule["fieldPath"] == ".notAfter"
    assert "timestamp(self.notAfter) > timestamp(self.notBefore)" in rule["rule"]
