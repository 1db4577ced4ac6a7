"""The ConfigurationItem lifecycle rules: retire and restore with the source, duplicate claims,
discovery's selection and naming, the relationships the cluster shows, dependents."""

from __future__ import annotations

from typing import Any

import pytest

from opsledger.domain.ci_lifecycle import (
    RETIRED_BY,
    RETIRED_BY_OPERATOR,
    RETIRED_FROM,
    count_dependents,
    discover,
    discovered_item,
    discovered_name,
    discovery_namespace,
    drift_condition,
    duplicate_condition,
    duplicate_of,
    elder_claim,
    exposes_stale,
    last_seen,
    qualify_target,
    ready_condition,
    restore,
    retire,
    source_event_reason,
)
from opsledger.domain.observe import source_key
from opsledger.domain.outcome import Event
from opsledger.domain.selectors import parse
from opsledger.domain.views import DEPENDENTS, Views
from opsledger.models.common import ConditionStatus, ObjectReference
from opsledger.models.configitem import (
    ConfigurationItemSpec,
    Lifecycle,
    Relationship,
    RelationshipType,
)

WEB = ObjectReference(api_version="apps/v1", kind="Deployment", name="web")


def _spec(lifecycle: str = "active", **more: Any) -> ConfigurationItemSpec:
    return ConfigurationItemSpec.model_validate(
        {"lifecycle": lifecycle, "source": WEB.model_dump(by_alias=True), **more}
    )


# retire and restore


def test_an_item_whose_source_is_gone_is_retired_and_marked_with_its_lifecycle() -> None:
    amendment = retire(Lifecycle.MAINTENANCE, "source Deployment web no longer exists")
    assert amendment.spec_patch == {"lifecycle": "retired"}
    assert amendment.annotations == {RETIRED_BY: RETIRED_BY_OPERATOR, RETIRED_FROM: "maintenance"}
    assert amendment.events == [
        Event(
            "Warning",
            "SourceDeleted",
            "source Deployment web no longer exists; the item is retired in the CMDB "
            "(lifecycle maintenance again if the source comes back)",
        )
    ]


def test_an_item_the_operator_retired_gets_its_lifecycle_back_with_its_source() -> None:
    marks = {RETIRED_BY: RETIRED_BY_OPERATOR, RETIRED_FROM: "maintenance"}
    spec, amendment = restore(_spec("retired"), WEB, marks)
    assert spec.lifecycle == Lifecycle.MAINTENANCE
    assert amendment.spec_patch == {"lifecycle": "maintenance"}
    assert amendment.annotations == {RETIRED_BY: None, RETIRED_FROM: None}
    assert amendment.events == [
        Event(
            "Normal",
            "SourceRestored",
            "source Deployment web exists again; the item is maintenance again",
        )
    ]


def test_an_item_a_person_retired_stays_retired_when_its_source_exists() -> None:
    spec, amendment = restore(_spec("retired"), WEB, {})
    assert spec.lifecycle == Lifecycle.RETIRED
    assert (amendment.spec_patch, amendment.annotations, amendment.events) == (None, {}, [])
    spec, amendment = restore(_spec("retired"), WEB, {RETIRED_BY: "someone", RETIRED_FROM: "x"})
    assert spec.lifecycle == Lifecycle.RETIRED
    assert amendment.spec_patch is None


def test_marks_on_an_item_a_person_brought_back_are_removed() -> None:
    spec, amendment = restore(_spec("active"), WEB, {RETIRED_FROM: "planned"})
    assert spec.lifecycle == Lifecycle.ACTIVE
    assert amendment.spec_patch is None
    assert amendment.annotations == {RETIRED_BY: None, RETIRED_FROM: None}
    assert amendment.events == []


def test_an_active_item_without_marks_needs_no_change() -> None:
    spec, amendment = restore(_spec("planned"), WEB, {"other": "x"})
    assert spec.lifecycle == Lifecycle.PLANNED
    assert (amendment.spec_patch, amendment.annotations, amendment.events) == (None, {}, [])


@pytest.mark.parametrize("before", [None, "", "no-such-lifecycle", "retired"])
def test_a_missing_or_unusable_earlier_lifecycle_restores_to_active(before: str | None) -> None:
    marks = {RETIRED_BY: RETIRED_BY_OPERATOR}
    if before is not None:
        marks[RETIRED_FROM] = before
    spec, amendment = restore(_spec("retired"), WEB, marks)
    assert spec.lifecycle == Lifecycle.ACTIVE
    assert amendment.spec_patch == {"lifecycle": "active"}


def test_the_last_observation_of_a_gone_source_is_kept_and_bad_edges_dropped() -> None:
    status = {
        "observed": {"image": "web:1"},
        "relationships": [
            {"type": "partOf", "target": "shop"},
            {"type": "noSuchType", "target": "x"},
        ],
    }
    live, edges = last_seen(status)
    assert live == {"image": "web:1"}
    assert edges == [Relationship(type=RelationshipType.PART_OF, target="shop")]
    assert last_seen({}) == ({}, [])


# conditions


def test_drift_and_ready_conditions_say_what_was_found() -> None:
    drifted = drift_condition(["image", "replicas"])
    assert (drifted.status, drifted.reason) == (ConditionStatus.TRUE, "AttributesDiffer")
    assert drifted.message.endswith("image, replicas")
    assert drift_condition([]).reason == "InSync"
    assert ready_condition(None).reason == "Recorded"
    retired = ready_condition("source Deployment web no longer exists")
    assert (retired.status, retired.reason) == (ConditionStatus.TRUE, "Retired")
    assert retired.message == "source Deployment web no longer exists"


# duplicate claims

KEY = source_key("apps/v1", "Deployment", "shop", "web")


def test_the_younger_of_two_items_on_one_source_is_the_duplicate() -> None:
    index = {
        KEY: [("2026-02-01T00:00:00Z", "shop", "web-2"), ("2026-01-01T00:00:00Z", "shop", "web")]
    }
    assert duplicate_of(index, _spec(), "shop", "web-2") == "shop/web"
    assert duplicate_of(index, _spec(), "shop", "web") is None  # the elder claim wins
    condition = duplicate_condition(WEB, "shop/web")
    assert (condition.status, condition.reason) == (ConditionStatus.FALSE, "DuplicateSource")
    assert "already described by ConfigurationItem shop/web" in condition.message


def test_a_single_claim_or_no_source_is_no_duplicate() -> None:
    index = {KEY: [("2026-01-01T00:00:00Z", "shop", "web")]}
    assert duplicate_of(index, _spec(), "shop", "web") is None
    assert duplicate_of({}, _spec(), "shop", "web") is None
    assert duplicate_of(index, ConfigurationItemSpec(), "shop", "web") is None


def test_the_elder_claim_owns_a_source() -> None:
    index = {KEY: [("2026-02-01T00:00:00Z", "shop", "b"), ("2026-01-01T00:00:00Z", "shop", "a")]}
    assert elder_claim(index, KEY) == ("2026-01-01T00:00:00Z", "shop", "a")
    assert elder_claim(index, ("apps", "Deployment", "shop", "other")) is None


def test_a_source_event_names_the_changes_in_progress() -> None:
    reason = source_event_reason(
        "shop", "web", kind="Deployment", source_name="web", what="deleted", during=["c1", "c2"]
    )
    assert reason == (
        "ConfigurationItem shop/web: Deployment web deleted during Change shop/c1, Change shop/c2"
    )
    assert source_event_reason(
        "shop", "web", kind="Deployment", source_name="web", what="deleted", during=[]
    ) == ("ConfigurationItem shop/web: Deployment web deleted")


# discovery


def _selected(kind: str, metadata: dict[str, Any], **overrides: Any) -> str | None:
    options: dict[str, Any] = {
        "selector": parse("app.kubernetes.io/part-of=shop"),
        "kinds": ["Deployment", "Node"],
        "namespaces": ["shop"],
        "infra_namespace": "infra",
        **overrides,
    }
    return discovery_namespace(kind, metadata, **options)


LABELLED = {"app.kubernetes.io/part-of": "shop"}


def test_discovery_selects_listed_kinds_in_listed_namespaces_by_labels() -> None:
    assert _selected("Deployment", {"namespace": "shop", "labels": LABELLED}) == "shop"
    assert _selected("StatefulSet", {"namespace": "shop", "labels": LABELLED}) is None
    assert _selected("Deployment", {"namespace": "other", "labels": LABELLED}) is None
    assert _selected("Deployment", {"namespace": "shop", "labels": {}}) is None
    assert _selected("Deployment", {"namespace": "shop", "labels": LABELLED}, selector=None) is None


def test_discovery_with_no_namespaces_listed_looks_in_all() -> None:
    meta = {"namespace": "other", "labels": LABELLED}
    assert _selected("Deployment", meta, namespaces=[]) == "other"
    assert _selected("Deployment", {"labels": LABELLED}, namespaces=[]) is None  # no namespace


def test_items_for_cluster_scoped_objects_go_to_the_infra_namespace() -> None:
    assert _selected("Node", {"name": "n1", "labels": LABELLED}) == "infra"
    assert _selected("Node", {"name": "n1", "labels": LABELLED}, infra_namespace="") is None


def test_discovered_items_are_named_for_their_object() -> None:
    assert discovered_name("Node", "node-a", "infra", {}) == "node-node-a"
    assert discovered_name("Deployment", "web", "shop", {}) == "web"
    assert discovered_name("Service", "web", "shop", {"shop/web": []}) == "web-service"
    assert len(discovered_name("PersistentVolume", "p" * 300, "infra", {})) == 253


def test_a_discovered_item_follows_its_object_and_names_its_service() -> None:
    source = {
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app.kubernetes.io/name": "w"}},
    }
    body = discovered_item(
        "Deployment",
        source,
        namespace="shop",
        relations={},
        group_version="opsledger.io/v1alpha1",
        item_kind="ConfigurationItem",
    )
    assert body["metadata"] == {
        "name": "web",
        "namespace": "shop",
        "labels": {"opsledger.io/discovered": "true", "app.kubernetes.io/managed-by": "opsledger"},
    }
    assert body["spec"] == {
        "source": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "service": "w",
    }
    unlabelled = {"apiVersion": "v1", "metadata": {"name": "n1"}}
    spec = discovered_item(
        "Node",
        unlabelled,
        namespace="infra",
        relations={},
        group_version="opsledger.io/v1alpha1",
        item_kind="ConfigurationItem",
    )["spec"]
    assert spec == {"source": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}


# relationships the cluster shows


def test_a_workload_is_part_of_its_owner_and_runs_on_the_nodes_items_follow() -> None:
    source = {
        "metadata": {
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": True},
                {"apiVersion": "v1", "kind": "Thing", "name": "x", "controller": False},
            ]
        }
    }
    by_source = {
        source_key("apps/v1", "Deployment", "shop", "web"): [("t", "shop", "web")],
        source_key("v1", "Node", "", "node-a"): [("t", "infra", "node-node-a")],
    }
    ref = ObjectReference(api_version="apps/v1", kind="ReplicaSet", name="web-1")
    found = discover(
        ref,
        source,
        {},
        namespace="shop",
        name="web-1",
        by_source=by_source,
        pod_labels={},
        nodes=["node-a", "node-b"],
    )
    assert found == [
        Relationship(type=RelationshipType.RUNS_ON, target="infra/node-node-a"),
        Relationship(type=RelationshipType.PART_OF, target="web"),
    ]


def test_a_service_exposes_the_workloads_its_selector_matches() -> None:
    ref = ObjectReference(api_version="v1", kind="Service", name="web")
    pod_labels = {
        "shop": [
            ("web-app", (("app", "web"),)),
            ("db", (("app", "db"),)),
            ("web", (("app", "web"),)),
        ]
    }
    found = discover(
        ref,
        {},
        {"selector": {"app": "web"}},
        namespace="shop",
        name="web",
        by_source={},
        pod_labels=pod_labels,
    )
    assert found == [Relationship(type=RelationshipType.EXPOSES, target="web-app")]


def _service_item(edges: list[str], lifecycle: str = "active") -> dict[str, Any]:
    return {
        "metadata": {"name": "web"},
        "spec": {"lifecycle": lifecycle},
        "status": {
            "class": "Service",
            "observed": {"selector": {"app": "web"}},
            "relationships": [{"type": "exposes", "target": t} for t in edges]
            + [{"type": "partOf", "target": "shop"}],
        },
    }


PODS = {"shop": [("web-app", (("app", "web"),)), ("db", (("app", "db"),))]}


def test_a_services_exposes_edges_are_stale_when_its_selector_matches_others() -> None:
    assert exposes_stale(_service_item([]), PODS, "shop")
    assert exposes_stale(_service_item(["web-app", "db"]), PODS, "shop")
    assert not exposes_stale(_service_item(["web-app"]), PODS, "shop")


def test_exposes_edges_are_never_stale_for_a_retired_item_or_another_class() -> None:
    assert not exposes_stale(_service_item([], lifecycle="retired"), PODS, "shop")
    deployment = _service_item([])
    deployment["status"]["class"] = "Deployment"
    assert not exposes_stale(deployment, PODS, "shop")


def test_targets_in_other_namespaces_are_qualified() -> None:
    assert qualify_target("shop", "web", "shop") == "web"
    assert qualify_target("infra", "node-a", "shop") == "infra/node-a"


def test_dependents_are_counted_over_every_items_relationships() -> None:
    views = Views()
    for uid, name, target in (("u1", "web", "db"), ("u2", "api", "web"), ("u3", "db", None)):
        rels = [{"type": "dependsOn", "target": target}] if target else []
        views.observe(
            "configurationitems",
            {
                "metadata": {"name": name, "namespace": "shop", "uid": uid},
                "spec": {"relationships": rels},
            },
        )
    index = views[DEPENDENTS]
    assert count_dependents(index, "shop/db") == 2  # web, and api through it
    assert count_dependents(index, "shop/web") == 1
    assert count_dependents(index, "shop/api") == 0
