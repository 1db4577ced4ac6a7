"""Standard-change templates with bounds, tried as someone would stretch a pre-approval: a
plan that sets what the template does not allow, a value out of range, another object than the
targets', a target of another class, a dropped check."""

from __future__ import annotations

from typing import Any

import pytest

from opsledger.domain.standard_changes import TemplateError, leaves, misfits, parse_template
from opsledger.models.change import ChangeSpec

TEMPLATE = """
summary: Roll out a new web image
targets: {services: [shop], classes: [Deployment], labels: {tier: web}}
plan:
  kinds: [Deployment]
  patchTypes: [merge, json]
  allow:
  - path: /spec/template/spec/containers/*/image
    pattern: "registry.example.com/web:[0-9.]+"
  - path: /spec/replicas
    min: 1
    max: 10
checks:
  post: [{name: errors, query: "sum(rate(errors[5m]))", below: 1}]
"""
ITEMS: dict[str, Any] = {
    "web": {
        "class": "Deployment",
        "labels": {"tier": "web"},
        "service": "shop",
        "source": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
    }
}
CHECKS = {"post": [{"name": "errors", "query": "sum(rate(errors[5m]))", "below": 1}]}


def _spec(
    patch: Any, *, target: str = "web", patch_type: str = "merge", **extra: Any
) -> ChangeSpec:
    return ChangeSpec.model_validate(
        {
            "type": "standard",
            "template": "web-image",
            "summary": "Roll out web 2.1",
            "service": "shop",
            "targets": ["web"],
            "plan": [
                {
                    "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                    "patchType": patch_type,
                    "patch": patch,
                }
            ],
            "checks": CHECKS,
            **extra,
        }
    )


def _image(image: str) -> list[dict[str, Any]]:
    """A JSON patch replacing the first container's image (a merge patch would replace the
    whole containers list)."""
    return [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}]


def _misfits(spec: ChangeSpec, items: dict[str, Any] = ITEMS) -> list[str]:
    return misfits(parse_template("standard-changes/web-image.yaml", TEMPLATE), spec, items)


def test_a_plan_inside_the_bounds_fits() -> None:
    assert _misfits(_spec(_image("registry.example.com/web:2.1"), patch_type="json")) == []
    assert _misfits(_spec({"spec": {"replicas": 4}})) == []


def test_a_value_outside_its_bounds_is_named() -> None:
    [found] = _misfits(_spec(_image("evil.example.com/miner:1"), patch_type="json"))
    assert found == (
        "plan step 1 (json patch of Deployment web) sets /spec/template/spec/containers/0/image "
        'to "evil.example.com/miner:1"; the template allows a string matching '
        "'registry.example.com/web:[0-9.]+'"
    )
    [found] = _misfits(_spec({"spec": {"replicas": 50}}))
    assert "sets /spec/replicas to 50; the template allows a number from 1 to 10" in found


def test_setting_what_the_template_does_not_allow_is_named() -> None:
    patch = {"spec": {"template": {"spec": {"serviceAccountName": "cluster-admin"}}}}
    [found] = _misfits(_spec(patch))
    assert "sets /spec/template/spec/serviceAccountName, which the template does not allow" in found


def test_patching_anything_but_a_targets_source_is_refused() -> None:
    found = _misfits(_spec({"spec": {"replicas": 2}}, target="payments"))
    assert any("patches Deployment payments, which is not the source" in f for f in found)


def test_json_patch_removals_and_other_types_do_not_fit() -> None:
    remove = [{"op": "remove", "path": "/spec/replicas"}]
    found = _misfits(_spec(remove, patch_type="json"))
    assert any("a JSON patch 'remove' operation" in f for f in found)
    found = _misfits(_spec({"spec": {"replicas": 2}}, patch_type="apply"))
    assert any("is a apply patch; the template allows merge, json" in f for f in found)


def test_replacing_a_whole_list_or_map_does_not_fit_where_only_its_fields_may_change() -> None:
    """A merge patch's list replaces the list (the container loses its command, env, probes);
    a JSON patch adding a container or replacing one whole does the same."""
    merge = {
        "spec": {"template": {"spec": {"containers": [{"image": "registry.example.com/web:3"}]}}}
    }
    [found] = _misfits(_spec(merge))
    assert "sets /spec/template/spec/containers (a list or map, which replaces all of it)" in found
    add = [{"op": "add", "path": "/spec/template/spec/containers/-", "value": {"image": "x"}}]
    [found] = _misfits(_spec(add, patch_type="json"))
    assert "sets /spec/template/spec/containers/- (a list or map" in found
    whole = [{"op": "replace", "path": "/spec/template/spec/containers/0", "value": {"image": "x"}}]
    assert _misfits(_spec(whole, patch_type="json"))


def test_a_misfit_quotes_a_secret_value_as_a_fingerprint() -> None:
    template = parse_template(
        "standard-changes/note.yaml",
        "summary: Annotate\n"
        "plan: {allow: [{path: /metadata/annotations/note, pattern: 'ok-.*'}]}\n",
    )
    spec = _spec({"metadata": {"annotations": {"note": "hunter2"}}}, checks={})
    [found] = misfits(template, spec, ITEMS)
    assert "sets /metadata/annotations/note to" in found
    assert "hunter2" not in found
    assert "<redacted " in found


def test_targets_of_another_class_or_without_the_labels_and_dropped_checks() -> None:
    items = {"web": {**ITEMS["web"], "class": "Database", "labels": {}}}
    found = _misfits(_spec({"spec": {"replicas": 2}}), items)
    assert "target web is a Database" in found
    assert 'target web lacks the labels {"tier": "web"}' in found
    weaker = _spec({"spec": {"replicas": 2}}, checks={"post": []})
    assert _misfits(weaker) == ["the post-check errors the template requires is missing or differs"]
    assert "target web is not a known ConfigurationItem" in _misfits(weaker, {"web": None})


def test_leaves_walk_maps_and_take_lists_whole() -> None:
    assert list(leaves({"a": {"b/c": 1}, "d": None, "e": [1]})) == [
        ("/a/b~1c", 1),
        ("/d", None),
        ("/e", [1]),
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("plan: [", "is not YAML"),
        ("- x", "must be a mapping"),
        ("summary: x\nplans: {}", "invalid"),
    ],
)
def test_a_broken_template_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(TemplateError, match=says):
        parse_template("standard-changes/x.yaml", text)
