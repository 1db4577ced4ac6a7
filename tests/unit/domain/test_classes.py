import pytest

from opsledger.domain.classes import effective_class


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("Deployment", "Workload"),
        ("StatefulSet", "Workload"),
        ("Service", "Service"),
        ("Node", "Node"),
        ("PersistentVolumeClaim", "Storage"),
        ("Ingress", "Ingress"),
        ("ConfigMap", "Other"),
    ],
)
def test_class_defaults_from_the_source_kind(kind: str, expected: str) -> None:
    assert effective_class(None, kind) == expected


def test_a_declared_class_wins_over_the_source() -> None:
    assert effective_class("Database", "StatefulSet") == "Database"


def test_no_class_and_no_source_is_other() -> None:
    assert effective_class(None, None) == "Other"
