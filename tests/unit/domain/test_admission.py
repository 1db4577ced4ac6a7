"""The admission guard's decisions: who passes, what is protected, what a denial says."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from opsledger.domain.admission import (
    PROTECTED_BY,
    PROTECTED_LABEL,
    ActiveChange,
    Facts,
    Guardian,
    Review,
    control_plane,
    denial,
    judge,
    selects,
)
from opsledger.domain.windows import Interval

OPERATOR = "system:serviceaccount:opsledger:opsledger"


def _deployment(image: str = "web:1.0", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": labels or {}},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": image}]}}},
    }


def _update(old: dict[str, Any], new: dict[str, Any], user: str = "jane", **kw: Any) -> Review:
    return Review(
        operation="UPDATE",
        username=user,
        namespace=kw.pop("namespace", "shop"),
        kind="Deployment",
        name="web",
        old=old,
        new=new,
        **kw,
    )


PROTECTING = Facts(
    operator=OPERATOR,
    guardians=[Guardian("web", protected=True, service="shop", criticality="high")],
)


def test_an_image_change_to_a_protected_workload_is_denied_outside_a_change() -> None:
    verdict = judge(_update(_deployment(), _deployment("web:2.0")), PROTECTING)
    assert not verdict.allowed
    assert verdict.guardian is not None
    assert verdict.guardian.name == "web"


def test_a_change_in_progress_that_targets_the_item_lets_it_through() -> None:
    facts = Facts(
        operator=OPERATOR,
        guardians=PROTECTING.guardians,
        changes=[ActiveChange("other", ("db",)), ActiveChange("upgrade-web", ("web", "db"))],
    )
    verdict = judge(_update(_deployment(), _deployment("web:2.0")), facts)
    assert verdict.allowed
    assert "upgrade-web" in verdict.message


def test_a_change_targeting_a_decoy_item_that_follows_the_workload_does_not() -> None:
    """Anyone may create an unprotected item with the protected workload as its source, and get
    a change to it approved or pre-approved: that must not open the workload."""
    guardians = [*PROTECTING.guardians, Guardian("decoy", protected=False)]
    facts = Facts(guardians=guardians, changes=[ActiveChange("sneaky", ("decoy",))])
    assert not judge(_update(_deployment(), _deployment("web:2.0")), facts).allowed


def test_a_permit_lets_only_its_requester_in_and_a_plan_nobody_but_the_operator() -> None:
    def facts(change: ActiveChange) -> Facts:
        return Facts(operator=OPERATOR, guardians=PROTECTING.guardians, changes=[change])

    permit = ActiveChange("by-hand", ("web",), permit=True, requester="jane")
    assert judge(_update(_deployment(), _deployment("web:2.0"), user="jane"), facts(permit)).allowed
    other = judge(_update(_deployment(), _deployment("web:2.0"), user="mallory"), facts(permit))
    assert not other.allowed
    assert "only its requester, jane, may work on its targets" in other.busy
    plan = ActiveChange("upgrade", ("web",), permit=False, requester="jane")
    mine = judge(_update(_deployment(), _deployment("web:9.9"), user="jane"), facts(plan))
    assert not mine.allowed
    assert "only OpsLedger applies it" in mine.busy
    assert judge(_update(_deployment(), _deployment("web:2.0"), user=OPERATOR), facts(plan)).allowed
    message = denial(
        _update(_deployment(), _deployment()), other.guardian, window=None, window_reason=None,
        busy=other.busy,
    )  # fmt: skip
    assert "only its requester, jane, may work on its targets" in message


def test_a_change_for_another_item_does_not() -> None:
    facts = Facts(guardians=PROTECTING.guardians, changes=[ActiveChange("db-fix", ("db",))])
    assert not judge(_update(_deployment(), _deployment("web:2.0")), facts).allowed


@pytest.mark.parametrize(
    ("review", "why"),
    [
        (_update(_deployment(), _deployment("web:2.0"), user=OPERATOR), "operator"),
        (
            _update(
                _deployment(),
                _deployment("web:2.0"),
                user="system:serviceaccount:kube-system:deployment-controller",
            ),
            "control-plane",
        ),
        (_update(_deployment(), _deployment("web:2.0"), namespace="kube-system"), "kube-system"),
        (
            _update(_deployment(), _deployment("web:2.0"), subresource="status"),
            "status",
        ),
        (
            _update(_deployment(), _deployment(labels={"team": "blue"})),
            "metadata-only",
        ),
    ],
)
def test_requests_that_pass_without_a_change(review: Review, why: str) -> None:
    verdict = judge(review, PROTECTING)
    assert verdict.allowed
    assert why in verdict.message


def test_removing_the_protection_label_is_not_a_harmless_metadata_update() -> None:
    old = _deployment(labels={PROTECTED_LABEL: "true"})
    verdict = judge(_update(old, _deployment()), Facts(operator=OPERATOR))
    assert not verdict.allowed


def test_a_label_protects_a_workload_that_no_item_follows() -> None:
    labelled = _deployment(labels={PROTECTED_LABEL: "true"})
    new = _deployment("web:2.0", labels={PROTECTED_LABEL: "true"})
    assert not judge(_update(labelled, new), Facts()).allowed
    # A change that names an item called like the workload does not open it: anyone can create
    # an item of that name, under any service.
    facts = Facts(changes=[ActiveChange("hotfix", ("web",))])
    verdict = judge(_update(labelled, new), facts)
    assert not verdict.allowed
    message = denial(_update(labelled, new), None, window=None, window_reason=None)
    assert "names no ConfigurationItem to change it by (annotation opsledger.io/protected-by)" in (
        message
    )
    # The item the protected-by annotation names opens it.
    named = {PROTECTED_LABEL: "true"}
    old = _deployment(labels=named)
    old["metadata"]["annotations"] = {PROTECTED_BY: "web-item"}
    facts = Facts(changes=[ActiveChange("hotfix", ("web-item",))])
    assert judge(_update(old, new), facts).allowed
    assert not judge(_update(old, new), Facts(changes=[ActiveChange("x", ("web",))])).allowed


def test_only_the_eldest_protecting_item_opens_the_workload() -> None:
    # A decoy created later, protected too, under a lenient service: a change to it opens
    # nothing; the eldest item is the authority (as its DuplicateSource condition says).
    facts = Facts(
        guardians=[
            Guardian("decoy", True, "sandbox", created="2026-12-02T05:00:00Z"),
            Guardian("web", True, "shop", created="2026-11-01T09:00:00Z"),
        ],
        changes=[ActiveChange("sneaky", ("decoy",))],
    )
    verdict = judge(_update(_deployment(), _deployment("web:2.0")), facts)
    assert not verdict.allowed
    assert verdict.guardian is not None
    assert verdict.guardian.name == "web"
    facts.changes = [ActiveChange("real", ("web",))]
    assert judge(_update(_deployment(), _deployment("web:2.0")), facts).allowed


def test_the_control_plane_is_named_exactly() -> None:
    assert control_plane("system:kube-controller-manager")
    assert control_plane("system:node:worker-1")
    assert control_plane("system:serviceaccount:kube-system:replicaset-controller")
    assert not control_plane("system:apiserver-imposter")
    assert not control_plane("system:serviceaccount:shop:system-node")


def test_a_selector_selects_as_the_api_server_does() -> None:
    labels = {"app": "web", "pod-template-hash": "7d9"}
    assert selects({"matchLabels": {"app": "web"}}, labels)
    assert not selects({"matchLabels": {"app": "api"}}, labels)
    assert selects(
        {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}, labels
    )
    assert not selects({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, labels)
    assert selects({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, labels)
    assert not selects(
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, labels
    )
    assert not selects({}, labels)  # an empty selector adopts nothing


def test_an_unprotected_workload_passes() -> None:
    facts = Facts(guardians=[Guardian("web", protected=False)])
    assert judge(_update(_deployment(), _deployment("web:2.0")), facts).allowed


def test_scaling_goes_through_the_parent_s_labels() -> None:
    scale_old = {"kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": 2}}
    scale_new = {"kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": 5}}
    review = _update(
        scale_old,
        scale_new,
        subresource="scale",
        parent=_deployment(labels={PROTECTED_LABEL: "true"}),
    )
    assert not judge(review, Facts()).allowed


def test_deleting_a_protected_workload_is_denied() -> None:
    review = Review(
        operation="DELETE",
        username="jane",
        namespace="shop",
        kind="Deployment",
        name="web",
        old=_deployment(),
    )
    assert not judge(review, PROTECTING).allowed


def test_the_denial_names_the_item_the_reason_the_window_and_the_way_out() -> None:
    review = _update(_deployment(), _deployment("web:2.0"))
    window = Interval(datetime(2026, 11, 28, 21, tzinfo=UTC), datetime(2026, 11, 29, 1, tzinfo=UTC))
    message = denial(review, PROTECTING.guardians[0], window=window, window_reason=None)
    assert "Deployment shop/web" in message
    assert "ConfigurationItem web" in message
    assert "criticality high" in message
    assert "2026-11-28T21:00:00Z to 2026-11-29T01:00:00Z" in message
    assert "spec.type: emergency" in message


def test_the_denial_says_why_no_window_is_open() -> None:
    review = _update(_deployment(), _deployment("web:2.0"))
    message = denial(review, None, window=None, window_reason="frozen until Monday")
    assert "labelled opsledger.io/protected=true" in message
    assert "No window is open: frozen until Monday." in message


def test_adding_the_protection_label_is_a_harmless_metadata_update() -> None:
    verdict = judge(_update(_deployment(), _deployment(labels={PROTECTED_LABEL: "true"})), Facts())
    assert verdict.allowed
