"""The ValidatingWebhookConfiguration the operator registers, and malformed reviews."""

import pytest

from opsledger.models.settings import Settings
from opsledger.servers.admission import BadReviewError, parse_review, webhook_configuration


def test_the_guard_is_called_only_for_what_can_change_a_protected_object() -> None:
    settings = Settings(webhook_failure_policy="Ignore", webhook_timeout=5)
    config = webhook_configuration(settings, "https://127.0.0.1:9443", b"CA", ["shop", "pay"])
    guard, reach, validate = config["webhooks"]
    assert guard["clientConfig"]["url"] == "https://127.0.0.1:9443/guard"
    assert guard["clientConfig"]["caBundle"] == "Q0E="
    guarded = {r for rule in guard["rules"] for r in rule["resources"]}
    assert guarded == {
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
        "cronjobs",
        "jobs",
    }
    # Only labelled objects: an unprotected Deployment never waits for (or on) the operator.
    [selected] = guard["objectSelector"]["matchExpressions"]
    assert selected == {"key": "opsledger.io/protected", "operator": "In", "values": ["true"]}
    # What carries no labels is sent only from the namespaces holding protected objects.
    reached = {r for rule in reach["rules"] for r in rule["resources"]}
    assert {
        "deployments/scale",
        "replicasets",
        "jobs",
        "pods",
        "pods/exec",
        "pods/ephemeralcontainers",
        "pods/eviction",
    } <= reached
    conditions = {c["name"]: c["expression"] for c in reach["matchConditions"]}
    # ... but draining a node never waits for the operator: who may cordon nodes is not sent
    assert conditions["not-a-node-drain"] == (
        "!has(request.subResource) || request.subResource != 'eviction' || "
        "!authorizer.group('').resource('nodes').check('update').allowed()"
    )
    # a kubelet finishing a Pod's deletion is the control plane; a look-alike name is not
    assert "startsWith('system:node:')" in conditions["not-the-control-plane"]
    assert "username in ['system:apiserver'," in conditions["not-the-control-plane"]
    assert conditions["namespaces-with-protected-objects"] == "request.namespace in ['pay', 'shop']"
    assert "system:serviceaccount:kube-system:" in conditions["not-the-control-plane"]
    assert guard["failurePolicy"] == "Ignore"
    assert guard["timeoutSeconds"] == 5
    excluded = guard["namespaceSelector"]["matchExpressions"][0]
    assert excluded["operator"] == "NotIn"
    assert "kube-system" in excluded["values"]
    assert validate["rules"][0]["apiGroups"] == ["opsledger.io"]
    assert set(validate["rules"][0]["operations"]) == {"CREATE", "UPDATE"}
    assert {"resources": ["configurationitems"], "operations": ["DELETE"]}.items() <= (
        validate["rules"][1].items()
    )
    everywhere = webhook_configuration(settings, "https://x", b"CA")["webhooks"][1]
    assert everywhere["matchConditions"][-1]["expression"] == "true"


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
