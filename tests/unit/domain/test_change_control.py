"""Change control at the API server's door, as a namespace user would try to get around it:
naming someone else as requester, editing an approved spec, writing a change's status, and
trusting a phase that was never approved."""

from __future__ import annotations

from typing import Any

import pytest

from opsledger.domain import change_control, changes
from opsledger.models.change import ChangeSpec

BOB = {"username": "bob", "uid": "u-bob", "groups": ["team-shop", "system:authenticated"]}
SPEC: dict[str, Any] = {
    "type": "normal",
    "summary": "Upgrade web",
    "service": "shop",
    "targets": ["web"],
    "plan": [
        {
            "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "patch": {"spec": {"replicas": 3}},
        }
    ],
}


def _hash(spec: dict[str, Any]) -> str:
    return changes.spec_hash(ChangeSpec.model_validate(spec))


def _approved(phase: str, spec: dict[str, Any] = SPEC) -> dict[str, Any]:
    return {
        "spec": spec,
        "status": {
            "phase": phase,
            "approval": {
                "approver": "Alice <alice@x>",
                "approvedAt": "2026-12-01T10:00:00Z",
                "specHash": _hash(spec),
            },
        },
    }


def test_the_requester_is_written_from_who_the_api_server_says_is_asking() -> None:
    patch = change_control.requester_patch({"requester": {"username": "alice"}}, BOB)
    assert patch == [
        {
            "op": "add",
            "path": "/spec/requester",
            "value": {
                "username": "bob",
                "uid": "u-bob",
                "groups": ["system:authenticated", "team-shop"],
            },
        }
    ]


def test_a_create_naming_someone_else_as_requester_is_refused_with_how_to_fix_it() -> None:
    forged = {**SPEC, "requester": {"username": "alice", "groups": []}}
    refusal = change_control.requester_refusal("Change shop/up", forged, BOB)
    assert refusal is not None
    assert "names 'alice' as its requester, but you are 'bob'" in refusal
    assert "Remove spec.requester" in refusal
    missing = change_control.requester_refusal("Change shop/up", SPEC, BOB)
    assert missing is not None
    assert "requester.opsledger.io" in missing
    # Another group list is another identity too.
    fewer = {**SPEC, "requester": {"username": "bob", "uid": "u-bob", "groups": ["team-shop"]}}
    assert change_control.requester_refusal("Change shop/up", fewer, BOB) is not None
    mine = {**SPEC, "requester": change_control.requester(BOB)}
    assert change_control.requester_refusal("Change shop/up", mine, BOB) is None


@pytest.mark.parametrize("phase", ["Approved", "Scheduled", "InProgress", "Verifying"])
def test_an_approved_spec_is_frozen_but_may_be_cancelled(phase: str) -> None:
    old = _approved(phase)
    wider = {**SPEC, "targets": ["web", "db"]}
    refusal = change_control.frozen_refusal("Change shop/up", old, {"spec": wider})
    assert refusal is not None
    assert f"is {phase}: it was approved by Alice <alice@x>" in refusal
    assert "cancel it (spec.cancelled: true) and propose a new Change" in refusal
    no_checks = {**SPEC, "plan": []}
    assert change_control.frozen_refusal("c", old, {"spec": no_checks}) is not None
    cancel = {**SPEC, "cancelled": True, "done": True}
    assert change_control.frozen_refusal("c", old, {"spec": cancel}) is None


def test_a_spec_not_approved_or_ended_may_be_edited() -> None:
    wider = {"spec": {**SPEC, "targets": ["web", "db"]}}
    assert change_control.frozen_refusal("c", {"spec": SPEC, "status": {}}, wider) is None
    assert change_control.frozen_refusal("c", _approved("Completed"), wider) is None
    voided = _approved("Scheduled", {**SPEC, "summary": "what was approved"})
    assert change_control.frozen_refusal("c", {**voided, "spec": SPEC}, wider) is None


def test_only_the_operator_writes_a_changes_status() -> None:
    refusal = change_control.status_refusal("Change shop/up", "bob", "opsledger-operator")
    assert refusal is not None
    assert "only the OpsLedger operator writes a Change's status" in refusal
    assert "'bob' may not" in refusal
    assert change_control.status_refusal("c", "opsledger-operator", "opsledger-operator") is None
    assert change_control.status_refusal("c", "bob", None) is not None


def test_an_emergency_change_needs_the_break_glass_right() -> None:
    assert change_control.needs_emergency_right({**SPEC, "type": "emergency"})
    assert not change_control.needs_emergency_right(SPEC)
    refusal = change_control.emergency_refusal("Change shop/fire", "shop", "bob", "no RBAC")
    assert "'create' on 'changes/emergency' in namespace shop" in refusal
    assert "'bob'" in refusal
    assert "make this a normal change" in refusal


def test_the_guard_trusts_only_a_running_change_whose_spec_is_the_approved_one() -> None:
    assert change_control.verified_in_progress(_approved("InProgress"))
    assert not change_control.verified_in_progress(_approved("Scheduled"))
    forged_phase = {"spec": SPEC, "status": {"phase": "InProgress"}}
    assert not change_control.verified_in_progress(forged_phase)
    widened = {**_approved("InProgress"), "spec": {**SPEC, "targets": ["web", "db"]}}
    assert not change_control.verified_in_progress(widened)
