"""What the approval policies say while a normal change waits for its merge."""

from __future__ import annotations

from dataclasses import dataclass

from opsledger.domain import change_approval
from opsledger.domain.change_approval import APPROVAL_POLICIES
from opsledger.models.common import ConditionStatus


@dataclass(frozen=True)
class PR:
    number: int = 7
    url: str = "https://forge/pulls/7"
    open: bool = True
    merged: bool = False
    approvers: tuple[str, ...] = ()


def test_the_policies_are_asked_in_order() -> None:
    assert [p.__name__ for p in APPROVAL_POLICIES] == [
        "emergency",
        "no_cmdb",
        "standard",
        "propose",
        "pull_request",
        "merged",
    ]


def test_an_approval_binds_the_hash_it_was_given_for() -> None:
    approved = {"approvedAt": "2026-11-25T10:00:00Z", "specHash": "sha256:a"}
    assert not change_approval.approval_void(approved, "sha256:a")
    assert change_approval.approval_void(approved, "sha256:b")
    assert not change_approval.approval_void({"specHash": "sha256:a"}, "sha256:b")  # not approved


def test_a_proposal_is_needed_until_one_of_exactly_this_spec_is_pushed() -> None:
    assert change_approval.needs_proposal({}, "sha256:a")
    assert change_approval.needs_proposal({"specHash": "sha256:a"}, "sha256:a")
    pushed = {"specHash": "sha256:a", "proposalCommit": "p1"}
    assert not change_approval.needs_proposal(pushed, "sha256:a")
    assert change_approval.needs_proposal(pushed, "sha256:b")


def test_a_fresh_proposal_nulls_what_a_stale_approval_held() -> None:
    approval = change_approval.fresh_approval("changes/c/ns/x", "p2", "sha256:b")
    assert approval["proposalCommit"] == "p2"
    assert {k for k, v in approval.items() if v is None} == {
        "commit",
        "approver",
        "approvedAt",
        "reviewers",
        "pullRequest",
        "pullRequestNumber",
    }
    with_pull = change_approval.with_pull_request(approval, PR())
    assert (with_pull["pullRequest"], with_pull["pullRequestNumber"]) == (
        "https://forge/pulls/7",
        7,
    )


def test_reviewers_are_told_where_to_approve() -> None:
    on_branch = change_approval.awaiting_approval("changes/c/ns/x", None, "main")
    assert (on_branch.type, on_branch.status, on_branch.reason) == (
        "Approved",
        ConditionStatus.FALSE,
        "AwaitingApproval",
    )
    assert on_branch.message == (
        "proposed in branch changes/c/ns/x of the CMDB; merge it into main to approve"
    )
    on_forge = change_approval.awaiting_approval("changes/c/ns/x", PR(), "main")
    assert on_forge.message == (
        "proposed in pull request #7 (https://forge/pulls/7); merge it into main to approve"
    )


def test_a_forge_or_cmdb_that_does_not_answer_is_said_so() -> None:
    failed = change_approval.pull_request_failed("changes/c/ns/x", "HTTP 500")
    assert (failed.status, failed.reason) == (ConditionStatus.FALSE, "ForgeUnavailable")
    assert failed.message == (
        "proposed on branch changes/c/ns/x of the CMDB, but the pull request could not be "
        "opened: HTTP 500; retrying"
    )
    unknown = change_approval.approval_unavailable("CMDBUnavailable", "fetch failed")
    assert (unknown.status, unknown.reason, unknown.message) == (
        ConditionStatus.UNKNOWN,
        "CMDBUnavailable",
        "fetch failed; retrying",
    )
