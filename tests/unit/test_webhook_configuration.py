"""The ValidatingWebhookConfiguration the operator registers, and malformed reviews."""

import pytest

from opsledger.models.settings import Settings
from opsledger.servers.admission import BadReviewError, parse_review, webhook_configuration


def test_the_configuration_guards_workloads_and_their_scale_outside_kube_system() -> None:
    settings = Settings(webhook_failure_policy="Ignore", webhook_timeout=5)
    config = webhook_configuration(settings, "https://127.0.0.1:9443", b"CA")
    guard, validate = config["webhooks"]
    assert guard["clientConfig"]["url"] == "https://127.0.0.1:9443/guard"
    assert guard["clientConfig"]["caBundle"] == "Q0E="
    resources = guard["rules"][0]["resources"]
    assert {"deployments", "deployments/scale", "statefulsets/scale", "daemonsets"} <= set(
        resources
    )
    assert guard["failurePolicy"] == "Ignore"
    assert guard["timeoutSeconds"] == 5
    excluded = guard["namespaceSelector"]["matchExpressions"][0]
    assert excluded["operator"] == "NotIn"
    assert "kube-system" in excluded["values"]
    assert validate["rules"][0]["apiGroups"] == ["opsledger.io"]
    assert set(validate["rules"][0]["operations"]) == {"CREATE", "UPDATE"}


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        {"kind": "Pod"},
        {"kind": "AdmissionReview"},
        {"kind": "AdmissionReview", "request": {}},
    ],
)
def test_a_malformed_review_is_refused_with_a_reason(document: object) -> None:
    with pytest.raises(BadReviewError):
        parse_review(document)


def test_a_review_gives_its_uid_and_request() -> None:
    uid, request = parse_review(
        {"kind": "AdmissionReview", "request": {"uid": "u-1", "operation": "UPDATE"}}
    )
    assert uid == "u-1"
    assert request["operation"] == "UPDATE"
