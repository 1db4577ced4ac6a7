"""The service catalog, tried as a requester would stretch it: a value out of bounds, a string
for a number, a parameter the item does not have, a value that is itself a template, a request
that names the change's type or its requester; and an item file a reviewer would refuse."""

from __future__ import annotations

from typing import Any

import pytest

from opsledger.domain.catalog import (
    CatalogError,
    accept,
    fulfil_target,
    parse_item,
    phase_of,
    render_change,
)
from opsledger.domain.standard_changes import misfits, parse_template
from opsledger.domain.validate import validate_tree
from opsledger.models.change import ChangeSpec
from opsledger.models.request import RequestPhase, RequestTarget

ITEM = """
title: More replicas for the shop's web tier
service: shop
parameters:
- {name: replicas, type: integer, min: 1, max: 10}
- {name: note, type: string, maxLength: 40, required: false}
- {name: tier, type: string, values: [web, api], default: web}
- {name: canary, type: boolean, default: false}
fulfilment:
  template: scale-web
  change:
    summary: "Scale {{ tier }} to {{ replicas }} ({{ note | default('no note') }})"
    targets: [web]
    plan:
    - target: {apiVersion: apps/v1, kind: Deployment, name: web}
      patch: {spec: {replicas: "{{ replicas }}"}}
"""
TEMPLATE = """
summary: Scale the web tier
targets: {services: [shop], names: [web]}
plan:
  kinds: [Deployment]
  allow: [{path: /spec/replicas, min: 1, max: 10}]
"""
WEB: dict[str, Any] = {
    "web": {
        "class": "Deployment",
        "labels": {},
        "service": "shop",
        "source": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
    }
}


def test_parameters_are_typed_defaulted_and_bounded() -> None:
    item = parse_item("catalog/scale-web.yaml", ITEM)
    values, problems = accept(item, {"replicas": "4", "canary": "yes"})
    assert problems == []
    assert values == {"replicas": 4, "tier": "web", "canary": True}

    _, problems = accept(
        item, {"replicas": 11, "tier": "db", "note": "x" * 41, "colour": "red", "canary": "maybe"}
    )
    assert problems == [
        "colour: the item has no such parameter (it has replicas, note, tier, canary)",
        "replicas: 11 is above the maximum 10",
        "note: longer than 40 characters",
        "tier: 'db' is not one of 'web', 'api'",
        "canary: 'maybe' is not a boolean",
    ]
    _, problems = accept(item, {"replicas": "three"})
    assert problems == ["replicas: 'three' is not an integer"]
    _, problems = accept(item, {"replicas": True})  # a boolean is not a number here
    assert problems == ["replicas: True is not an integer"]
    _, problems = accept(item, {})
    assert problems == ["replicas: required"]


def test_the_change_is_made_from_the_skeleton_and_fits_its_template() -> None:
    item = parse_item("catalog/scale-web.yaml", ITEM)
    values, _ = accept(item, {"replicas": "4"})
    spec = render_change(item, "scale-web", "more-web", values)
    assert spec["type"] == "standard"
    assert spec["template"] == "scale-web"
    assert spec["service"] == "shop"
    assert spec["summary"] == "Scale web to 4 (no note)"
    assert spec["plan"][0]["patch"] == {"spec": {"replicas": 4}}  # typed, not "4"
    template = parse_template("standard-changes/scale-web.yaml", TEMPLATE)
    assert misfits(template, ChangeSpec.model_validate(spec), WEB) == []


def test_a_value_is_never_a_template() -> None:
    item = parse_item("catalog/scale-web.yaml", ITEM)
    values, problems = accept(item, {"replicas": 2, "note": "{{ 7 * 7 }} {% raw %}"})
    assert problems == []
    spec = render_change(item, "scale-web", "r", values)
    assert spec["summary"] == "Scale web to 2 ({{ 7 * 7 }} {% raw %})"


def test_the_skeleton_cannot_choose_the_type_or_the_requester() -> None:
    """Whatever the item file says, the change is standard under the item's own template (or
    normal when the item needs approval), and who asked is set by OpsLedger."""
    sneaky = ITEM.replace(
        "    targets: [web]\n",
        "    targets: [web]\n    type: emergency\n    template: anything\n"
        "    requester: {username: root}\n    onBehalfOf: {username: root}\n",
    )
    item = parse_item("catalog/scale-web.yaml", sneaky)
    spec = render_change(item, "scale-web", "r", {"replicas": 2, "tier": "web"})
    assert (spec["type"], spec["template"]) == ("standard", "scale-web")
    assert "requester" not in spec
    assert "onBehalfOf" not in spec
    approved = parse_item(
        "catalog/x.yaml", sneaky.replace("service: shop", "service: shop\napproval: required")
    )
    spec = render_change(approved, "x", "r", {"replicas": 2, "tier": "web"})
    assert spec["type"] == "normal"
    assert "template" not in spec


def test_values_outside_the_template_do_not_fit_it() -> None:
    """A catalog item looser than its template cannot stretch the template."""
    loose = parse_item("catalog/scale-web.yaml", ITEM.replace("max: 10}", "max: 50}"))
    values, problems = accept(loose, {"replicas": 40})
    assert problems == []
    spec = render_change(loose, "scale-web", "r", values)
    template = parse_template("standard-changes/scale-web.yaml", TEMPLATE)
    assert misfits(template, ChangeSpec.model_validate(spec), WEB) == [
        "plan step 1 (merge patch of Deployment web) sets /spec/replicas to 40; the template "
        "allows a number from 1 to 10"
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("title: x\nparameters: [{name: a}, {name: a}]", "parameters named twice: a"),
        ("title: x\nparameters: [{name: a, pattern: '('}]", "parameter a's pattern"),
        (
            "title: x\nparameters: [{name: a, type: integer, max: 3, default: 5}]",
            "above the maximum",
        ),
        (
            "title: x\nfulfilment: {template: t, change: {summary: '{{ a '}}",
            "fulfilment.change",
        ),
        ("title: x\napproval: maybe", "approval"),
        ("title: x\nprice: 3", "price"),
    ],
)
def test_an_item_a_reviewer_would_refuse(text: str, problem: str) -> None:
    with pytest.raises(CatalogError, match=r"catalog/x\.yaml is invalid") as caught:
        parse_item("catalog/x.yaml", text)
    assert problem in str(caught.value)
    assert validate_tree(iter([("catalog/x.yaml", text)]))[0].path == "catalog/x.yaml"


def test_phases_and_targets() -> None:
    assert phase_of(None) is RequestPhase.SUBMITTED
    assert phase_of("PendingApproval") is RequestPhase.WAITING_FOR_APPROVAL
    assert phase_of("InProgress") is RequestPhase.IN_FULFILMENT
    assert phase_of("Completed") is RequestPhase.FULFILLED
    assert phase_of("RolledBack") is RequestPhase.FAILED
    targets = [RequestTarget(item="scale-*", fulfil="1h"), RequestTarget(fulfil="72h")]
    assert fulfil_target(targets, "scale-web") == "1h"
    assert fulfil_target(targets, "new-laptop") == "72h"
    assert fulfil_target([], "x") is None
