"""What a Change's record and its proposal tell the CMDB and its reviewers; how a plan step is
stamped on its target."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opsledger.domain import changes
from opsledger.domain.change_records import change_record, next_window, proposal_message
from opsledger.models.change import ChangePhase, ChangeSpec

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def _spec(**extra: Any) -> ChangeSpec:
    return ChangeSpec.model_validate(
        {"type": "normal", "summary": "Upgrade web", "service": "shop", "targets": ["web"], **extra}
    )


STATUS = {
    "phase": "Scheduled",
    "approval": {"approver": "Alice", "approvedAt": "2026-11-25T10:00:00Z", "reviewers": None},
    "window": {"start": "2026-11-25T22:00:00Z", "end": "2026-11-26T00:00:00Z"},
    "risk": "medium",
    "riskScore": 5,
    "riskFactors": ["criticality high", "manual work (permit)"],
    "conflicts": ["other"],
    "incident": "x",
    "transitions": [{"phase": "PendingApproval", "at": "2026-11-25T09:00:00Z", "reason": "r"}],
}


def _record(*, proposal: bool) -> Any:
    spec = _spec()
    return change_record(
        cluster="c",
        namespace="ns",
        name="upgrade",
        uid="u-1",
        spec=spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        spec_hash="sha256:a",
        phase=ChangePhase.SCHEDULED,
        status=STATUS,
        targets=spec.targets,
        proposal=proposal,
    )


def test_a_proposal_holds_only_what_reviewers_approve() -> None:
    record = _record(proposal=True)
    assert record.phase == ChangePhase.PENDING_APPROVAL
    assert record.approval is None
    assert record.incident is None
    assert record.transitions == []
    assert record.spec_hash == "sha256:a"
    assert record.metadata.uid == "u-1"  # the approval binds this very object
    assert record.risk == "medium"


def test_a_later_record_carries_the_approval_without_its_nulled_keys() -> None:
    record = _record(proposal=False)
    assert record.phase == ChangePhase.SCHEDULED
    assert record.approval is not None
    assert record.approval.approver == "Alice"
    assert record.incident == "x"
    assert [t.phase for t in record.transitions] == ["PendingApproval"]


def test_the_proposal_message_says_what_reviewers_need_to_decide() -> None:
    spec = _spec(
        plan=[
            {
                "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "patch": {"spec": {"replicas": 3}},
            }
        ],
        checks={"post": [{"name": "errors", "query": "q", "below": 0.01}]},
    )
    message = proposal_message(
        cluster="c",
        namespace="ns",
        name="upgrade",
        spec=spec,
        status=STATUS,
        affected=["checkout", "web"],
        window="2026-11-25T22:00:00Z to 2026-11-26T00:00:00Z",
    )
    title, _, body = message.partition("\n")
    assert title == "change(c/ns/upgrade): Upgrade web"
    for line in (
        "- **Affected items:** checkout, web",
        "- **Window:** 2026-11-25T22:00:00Z to 2026-11-26T00:00:00Z",
        "- **Risk:** medium (score 5: criticality high, manual work (permit))",
        "- **Conflicts:** other",
        "1. merge patch of Deployment web:",
        '   `{"spec": {"replicas": 3}}`',
        "- post: errors `q` below 0.01",
    ):
        assert line in body.splitlines(), body
    assert message.endswith("close or delete it to reject it.\n")
    permit = proposal_message(
        cluster="c", namespace="ns", name="p", spec=_spec(), status={}, affected=[], window="w"
    )
    assert "No plan: a permit for manual work" in permit
    assert "**Risk:**" not in permit


def test_the_window_text_for_reviewers() -> None:
    assert next_window(T0, _spec(), None) == "unknown: no ServiceLevel for service shop"
    invalid = {"spec": {"service": "shop", "maintenanceWindows": [{"schedule": "nope"}]}}
    assert next_window(T0, _spec(), invalid) == "unknown: the service's ServiceLevel is invalid"
    nightly = {
        "spec": {
            "service": "shop",
            "maintenanceWindows": [{"schedule": "0 22 * * *", "duration": "2h"}],
        }
    }
    assert next_window(T0, _spec(), nightly) == "2026-11-25T22:00:00Z to 2026-11-26T00:00:00Z"
    late = _spec(schedule={"notAfter": "2026-11-25T11:00:00Z"})
    assert next_window(T0, late, nightly).startswith("none: schedule.notAfter")


def test_a_merge_patch_carries_the_step_stamp() -> None:
    patched = changes.stamped("merge", {"spec": {"replicas": 3}}, "uid/0", None)
    assert patched == {
        "spec": {"replicas": 3},
        "metadata": {"annotations": {"opsledger.io/change-step": "uid/0"}},
    }


def test_a_json_patch_tests_the_version_it_read_and_adds_the_stamp() -> None:
    current = {"metadata": {"resourceVersion": "42", "annotations": {"a": "b"}}}
    ops = changes.stamped(
        "json", [{"op": "replace", "path": "/spec/replicas", "value": 3}], "u/1", current
    )
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    assert ops[-1] == {
        "op": "add",
        "path": "/metadata/annotations/opsledger.io~1change-step",
        "value": "u/1",
    }
    bare = changes.stamped("json", [], "u/1", {"metadata": {"resourceVersion": "1"}})
    assert bare[-1] == {
        "op": "add",
        "path": "/metadata/annotations",
        "value": {"opsledger.io/change-step": "u/1"},
    }
