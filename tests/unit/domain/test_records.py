"""Records: what is observed, what is never written, drift, and byte-stable rendering."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from opsledger.domain.drift import drifted
from opsledger.domain.observe import observe, owner_relationships, selects, source_key
from opsledger.domain.records import ci_record, record_path, to_yaml
from opsledger.domain.redaction import REDACTED, Redactor
from opsledger.models.configitem import ConfigurationItemSpec
from opsledger.models.records import ConfigurationItemRecord

TOKEN = "ghp_" + "x" * 36
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "1111-2222",
        "resourceVersion": "4242",
        "generation": 7,
        "labels": {"app": "web"},
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": '{"password": "hunter2"}',
            "deployment.kubernetes.io/revision": "3",
            "example.com/deploy-token": TOKEN,
            "example.com/team": "storefront",
        },
    },
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "web:1.4.2",
                        "resources": {"requests": {"cpu": "100m"}},
                        "env": [
                            {"name": "LOG_LEVEL", "value": "info"},
                            {"name": "DB_PASSWORD", "value": "hunter2"},
                            {"name": "API_URL", "value": "https://bot:s3cr3t@api.example"},
                            {
                                "name": "STRIPE_KEY",
                                "valueFrom": {"secretKeyRef": {"name": "stripe", "key": "k"}},
                            },
                        ],
                    }
                ]
            },
        },
    },
    "status": {"readyReplicas": 2, "observedGeneration": 7},
}


def test_a_deployment_is_observed_with_images_replicas_and_resources() -> None:
    observed = observe(DEPLOYMENT, Redactor())
    assert observed["images"] == {"app": "web:1.4.2"}
    assert (observed["replicas"], observed["readyReplicas"]) == (3, 2)
    assert observed["resources"] == {"app": {"requests": {"cpu": "100m"}}}
    assert observed["uid"] == "1111-2222"
    assert "resourceVersion" not in str(observed)


def test_secrets_never_reach_the_record() -> None:
    text = to_yaml(
        ci_record(
            cluster="dev",
            namespace="shop",
            name="web",
            spec=ConfigurationItemSpec.model_validate(
                {"source": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}
            ),
            observed=observe(DEPLOYMENT, Redactor()),
        )
    )
    assert "hunter2" not in text
    assert TOKEN not in text
    assert "s3cr3t" not in text
    assert "last-applied-configuration" not in text
    assert "STRIPE_KEY" in text
    assert "fromSecret: stripe/k" in text
    assert "value: info" in text
    # the token and team annotations (not known to be safe), DB_PASSWORD, the URL credentials
    assert text.count("<redacted ") == 4
    assert "example.com/team: storefront" not in text  # allow-list: unknown annotations hidden


def test_extra_redaction_patterns_apply() -> None:
    redactor = Redactor.with_extra(keys=[r"(?i)app"])
    observed = observe(DEPLOYMENT, redactor)
    assert observed["labels"]["app"] == REDACTED


def test_rendering_is_stable_and_ignores_volatile_fields() -> None:
    spec = ConfigurationItemSpec()
    first = to_yaml(
        ci_record(
            cluster="dev",
            namespace="shop",
            name="web",
            spec=spec,
            observed=observe(DEPLOYMENT, Redactor()),
        )
    )
    later = copy.deepcopy(DEPLOYMENT)
    later["metadata"]["resourceVersion"] = "9999"
    later["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "4"
    later["metadata"]["labels"] = {"app": "web"}
    second = to_yaml(
        ci_record(
            cluster="dev",
            namespace="shop",
            name="web",
            spec=spec,
            observed=observe(later, Redactor()),
        )
    )
    assert first == second


def test_a_rendered_record_validates_against_the_record_model() -> None:
    text = to_yaml(
        ci_record(
            cluster="dev",
            namespace="shop",
            name="web",
            spec=ConfigurationItemSpec(),
            observed=observe(DEPLOYMENT, Redactor()),
        )
    )
    record = ConfigurationItemRecord.model_validate(yaml.safe_load(text))
    assert record.spec.class_ == "Other"  # no source declared


def test_the_class_comes_from_the_source_and_retirement_is_recorded() -> None:
    spec = ConfigurationItemSpec.model_validate(
        {"source": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}
    )
    record = ci_record(
        cluster="dev",
        namespace="shop",
        name="web",
        spec=spec,
        observed=None,
        retired_reason="source Deployment shop/web was deleted",
    )
    assert record.spec.class_ == "Workload"
    assert record.spec.lifecycle == "retired"
    assert "retiredReason: source Deployment shop/web was deleted" in to_yaml(record)


def test_drift_compares_declared_attributes_with_observed_values() -> None:
    observed = observe(DEPLOYMENT, Redactor())
    assert drifted({"replicas": 3, "images.app": "web:1.4.2"}, observed) == []
    assert drifted({"replicas": "2", "images.app": "web:1.5.0", "tier": "gold"}, observed) == [
        "images.app",
        "replicas",
    ]


def test_relationships_are_merged_deduplicated_and_sorted() -> None:
    spec = ConfigurationItemSpec.model_validate(
        {
            "relationships": [
                {"type": "dependsOn", "target": "orders-db"},
                {"type": "dependsOn", "target": "cache"},
            ]
        }
    )
    discovered = ConfigurationItemSpec.model_validate(
        {
            "relationships": [
                {"type": "dependsOn", "target": "cache"},
                {"type": "runsOn", "target": "kwok-node-0"},
            ]
        }
    ).relationships
    record = ci_record(
        cluster="c", namespace="n", name="x", spec=spec, observed={}, discovered=discovered
    )
    assert [(r.type, r.target) for r in record.relationships] == [
        ("dependsOn", "cache"),
        ("dependsOn", "orders-db"),
        ("runsOn", "kwok-node-0"),
    ]


def test_owner_references_and_selectors() -> None:
    pod = {
        "metadata": {
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-abc",
                    "controller": True,
                },
                {"kind": "Thing", "name": "other"},
            ]
        }
    }
    assert owner_relationships(pod) == [("partOf", "apps/v1", "ReplicaSet", "web-abc")]
    assert selects({"app": "web"}, {"app": "web", "tier": "fe"})
    assert not selects({}, {"app": "web"})
    assert not selects({"app": "api"}, {"app": "web"})


def test_the_path_is_sharded_by_cluster() -> None:
    assert record_path("eu-1", "shop", "configurationitems", "web") == (
        "clusters/eu-1/shop/configurationitems/web.yaml"
    )


def test_nodes_services_and_ingresses() -> None:
    node = observe(
        {
            "kind": "Node",
            "metadata": {"name": "n"},
            "status": {
                "capacity": {"cpu": "16"},
                "nodeInfo": {"kubeletVersion": "v1.37.2"},
                "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "x"}],
            },
        },
        Redactor(),
    )
    assert node["conditions"] == {"Ready": "True"}
    assert node["kubeletVersion"] == "v1.37.2"
    service = observe(
        {
            "kind": "Service",
            "metadata": {},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        Redactor(),
    )
    assert service["ports"] == [{"port": 80, "targetPort": 8080}]
    ingress = observe(
        {
            "kind": "Ingress",
            "metadata": {},
            "spec": {
                "rules": [
                    {
                        "host": "shop.example",
                        "http": {"paths": [{"path": "/", "backend": {"service": {"name": "web"}}}]},
                    }
                ]
            },
        },
        Redactor(),
    )
    assert ingress["backends"] == [{"host": "shop.example", "path": "/", "service": "web"}]


def test_a_source_is_identified_by_its_api_group_not_only_its_kind() -> None:
    apps = source_key("apps/v1", "Deployment", "shop", "web")
    assert apps != source_key("example.com/v1", "Deployment", "shop", "web")
    assert apps == source_key("apps/v1beta2", "Deployment", "shop", "web")  # same object
    assert source_key("v1", "Service", "shop", "web") == ("", "Service", "shop", "web")
    assert source_key("v1", "Node", "shop", "n1") == source_key("v1", "Node", None, "n1")


def test_declared_attributes_are_redacted_in_the_record_and_drift_ignores_them() -> None:
    spec = ConfigurationItemSpec.model_validate(
        {
            "source": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "attributes": {
                "replicas": 2,
                "adminPassword": "hunter2",
                "connection": "Server=db;Database=shop;Password=hunter2;",
                "owner": "team-storefront",
            },
        }
    )
    record = ci_record(
        cluster="dev",
        namespace="shop",
        name="web",
        spec=spec,
        observed=observe(DEPLOYMENT, Redactor()),
        redactor=Redactor(),
    )
    text = to_yaml(record)
    assert "hunter2" not in text
    assert record.spec.attributes == {
        "replicas": 2,
        "adminPassword": REDACTED,
        "connection": REDACTED,
        "owner": "team-storefront",
    }
    assert record.drift == ["replicas"]
    extra = ci_record(
        cluster="dev",
        namespace="shop",
        name="web",
        spec=spec,
        observed={},
        redactor=Redactor.with_extra(keys=[r"^owner$"]),
    )
    assert extra.spec.attributes["owner"] == REDACTED  # the operator's own patterns apply


def test_pod_labels_and_selectors_are_redacted_like_any_value() -> None:
    leaky = copy.deepcopy(DEPLOYMENT)
    labels = {"app": "web", "aws": "AKIAIOSFODNN7EXAMPLE", "deploy-token": "abc123"}
    leaky["spec"]["selector"]["matchLabels"] = labels
    leaky["spec"]["template"]["metadata"]["labels"] = labels
    observed = observe(leaky, Redactor())
    expected = {"app": "web", "aws": REDACTED, "deploy-token": REDACTED}
    assert observed["podLabels"] == expected
    assert observed["selector"] == expected
    service = observe({"kind": "Service", "metadata": {}, "spec": {"selector": labels}}, Redactor())
    assert service["selector"] == expected
    assert selects(service["selector"], observed["podLabels"])  # still matched, both redacted
