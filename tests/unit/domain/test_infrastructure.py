"""What the infrastructure discovery reads off objects: claims, volumes, the edges it draws."""

from __future__ import annotations

from opsledger.domain.observe import infrastructure_edges, observe, workload_claims
from opsledger.domain.redaction import Redactor
from opsledger.models.configitem import RelationshipType


def _statefulset() -> dict[str, object]:
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "orders-db"},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "volumes": [{"name": "c", "persistentVolumeClaim": {"claimName": "certs"}}]
                }
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
        },
    }


def test_a_statefulset_mounts_its_template_claims_and_the_named_ones() -> None:
    assert workload_claims(_statefulset()) == ["certs", "data-orders-db-0", "data-orders-db-1"]


def test_a_workload_runs_on_its_pods_nodes_and_stores_in_its_claims() -> None:
    observed = observe(_statefulset(), Redactor())
    edges = infrastructure_edges("StatefulSet", observed, ["node-b", "node-a", "node-b"])
    assert edges == [
        (RelationshipType.RUNS_ON, "Node", "node-a"),
        (RelationshipType.RUNS_ON, "Node", "node-b"),
        (RelationshipType.STORES_IN, "PersistentVolumeClaim", "certs"),
        (RelationshipType.STORES_IN, "PersistentVolumeClaim", "data-orders-db-0"),
        (RelationshipType.STORES_IN, "PersistentVolumeClaim", "data-orders-db-1"),
    ]


def test_a_claim_stores_in_its_volume_and_an_ingress_exposes_its_services() -> None:
    pvc = observe(
        {"kind": "PersistentVolumeClaim", "metadata": {}, "spec": {"volumeName": "pv-1"}},
        Redactor(),
    )
    assert infrastructure_edges("PersistentVolumeClaim", pvc, []) == [
        (RelationshipType.STORES_IN, "PersistentVolume", "pv-1")
    ]
    ingress = observe(
        {
            "kind": "Ingress",
            "metadata": {},
            "spec": {
                "rules": [
                    {
                        "host": "shop.example",
                        "http": {
                            "paths": [
                                {"path": "/", "backend": {"service": {"name": "web"}}},
                                {"path": "/api", "backend": {"service": {"name": "api"}}},
                            ]
                        },
                    }
                ]
            },
        },
        Redactor(),
    )
    assert infrastructure_edges("Ingress", ingress, []) == [
        (RelationshipType.EXPOSES, "Service", "api"),
        (RelationshipType.EXPOSES, "Service", "web"),
    ]


def test_a_persistent_volume_records_its_size_class_and_claim() -> None:
    pv = observe(
        {
            "kind": "PersistentVolume",
            "metadata": {"uid": "u1"},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "storageClassName": "fast",
                "claimRef": {"namespace": "shop", "name": "orders-data"},
                "persistentVolumeReclaimPolicy": "Retain",
            },
            "status": {"phase": "Bound"},
        },
        Redactor(),
    )
    assert pv["capacity"] == "10Gi"
    assert pv["claim"] == "shop/orders-data"
    assert pv["phase"] == "Bound"
