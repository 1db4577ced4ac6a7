"""The approval policy, as someone trying to approve what they may not would try it: approving
their own change, approving another team's service, counting one person twice, rewriting the
policy file into nonsense."""

from __future__ import annotations

import pytest

from opsledger.domain.approval_policy import (
    Identity,
    Judgement,
    PolicyError,
    judge,
    parse_policy,
)
from opsledger.models.policy import ApprovalPolicy

POLICY = """
rules:
- match: {services: ["*"]}
  approvers: {groups: [sre]}
- match: {services: [shop]}
  approvers: {users: [alice, bob], groups: [sre]}
required: {low: 1, medium: 1, high: 2}
groups:
  sre: [dana]
people:
  alice: {kubernetes: [alice@corp], forge: alice-gh, signers: [alice@corp], git: [alice@corp]}
  bob: {kubernetes: [bob@corp], forge: bob-gh}
"""


def _policy() -> ApprovalPolicy:
    policy = parse_policy(POLICY)
    assert policy is not None
    return policy


def _judge(
    *given: Identity, requester: str = "bob@corp", risk: str = "low", service: str = "shop"
) -> Judgement:
    return judge(
        _policy(),
        service=service,
        namespace="shop-prod",
        requester=requester,
        risk=risk,
        given=given,
        proof="approving review(s)",
    )


def test_an_allowed_person_other_than_the_requester_approves() -> None:
    verdict = _judge(Identity("forge", "alice-gh"))
    assert verdict.approved
    assert verdict.approvers == ("alice",)


def test_the_requester_never_counts_under_any_of_their_names() -> None:
    verdict = _judge(Identity("forge", "bob-gh"))
    assert not verdict.approved
    assert "bob-gh is the requester" in verdict.message
    assert "needs 1 approving review(s) from alice, bob, dana" in verdict.message


def test_someone_the_matching_rule_does_not_name_does_not_count() -> None:
    verdict = _judge(Identity("forge", "mallory"))
    assert not verdict.approved
    assert "mallory may not approve changes to shop" in verdict.message
    # The last matching rule decides: for another service only the sre group may.
    assert not _judge(Identity("forge", "alice-gh"), service="billing").approved
    assert _judge(Identity("forge", "dana"), service="billing").approved


def test_high_risk_needs_two_people_and_one_person_counts_once() -> None:
    once = _judge(Identity("forge", "alice-gh"), Identity("signer", "alice@corp"), risk="high")
    assert not once.approved
    assert "high risk needs 2" in once.message
    assert "has 1 (alice)" in once.message
    twice = _judge(Identity("forge", "alice-gh"), Identity("forge", "dana"), risk="high")
    assert twice.approved
    assert twice.approvers == ("alice", "dana")


def test_an_unassessed_risk_needs_what_the_highest_level_needs() -> None:
    verdict = judge(
        _policy(),
        service="shop",
        namespace="x",
        requester=None,
        risk=None,
        given=[Identity("forge", "alice-gh")],
        proof="review",
    )
    assert not verdict.approved


def test_a_merge_committer_is_matched_by_e_mail() -> None:
    assert _judge(Identity("git", "Alice A <alice@corp>")).approvers == ("alice",)


def test_no_rule_for_the_service_means_nobody_may_approve() -> None:
    policy = parse_policy("rules:\n- match: {services: [billing]}\n  approvers: {users: [a]}\n")
    verdict = judge(
        policy,
        service="shop",
        namespace="n",
        requester="r",
        risk="low",
        given=[Identity("forge", "a")],
        proof="review",
    )
    assert not verdict.approved
    assert "no rule of approval-policy.yaml covers service shop" in verdict.message


def test_without_a_policy_anyone_but_the_requester_approves_once() -> None:
    mine = judge(
        None, service="s", namespace="n", requester="bob", risk="high",
        given=[Identity("forge", "bob")], proof="review",
    )  # fmt: skip
    assert not mine.approved
    other = judge(
        None, service="s", namespace="n", requester="bob", risk="high",
        given=[Identity("forge", "carol")], proof="review",
    )  # fmt: skip
    assert other.approved


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rules: [", "is not YAML"),
        ("- a list", "must be a mapping"),
        ("rules: [{approvers: {users: [a]}, extra: 1}]", "is invalid"),
        ("required: {high: 0}", "required.high must be at least 1"),
    ],
)
def test_a_broken_policy_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(PolicyError, match=says):
        parse_policy(text)
    assert parse_policy(None) is None


def test_a_rule_can_name_the_owners_of_the_items_a_change_touches() -> None:
    policy = parse_policy(
        "rules:\n"
        "- match: {services: ['*']}\n  approvers: {users: [anyone]}\n"
        "- match: {services: ['*'], owners: [team-payments]}\n  approvers: {users: [pam]}\n"
    )

    def verdict(owners: tuple[str, ...], *who: str) -> bool:
        return judge(
            policy, service="shop", namespace="n", requester="r", risk="low",
            given=[Identity("forge", w) for w in who], proof="review",
            items=[("shop", o) for o in owners],
        ).approved  # fmt: skip

    assert not verdict(("team-payments",), "pam")  # the shop's own rule wants "anyone" too
    assert verdict(("team-payments",), "pam", "anyone")
    assert not verdict(("team-payments", "team-web"), "anyone")  # payments' items: pam too
    assert verdict(("team-web",), "anyone")


def test_adding_an_item_of_a_lenient_team_does_not_choose_the_rule() -> None:
    """Every subject of a change must be satisfied: the strict rule for the shop still holds
    when the change also names an item of another service with a lenient rule."""
    policy = parse_policy(
        "rules:\n"
        "- match: {services: [shop]}\n  approvers: {users: [alice]}\n"
        "- match: {services: [sandbox]}\n  approvers: {users: [anyone]}\n"
    )
    verdict = judge(
        policy, service="shop", namespace="n", requester="r", risk="low",
        given=[Identity("forge", "anyone")], proof="review", items=[("sandbox", None)],
    )  # fmt: skip
    assert not verdict.approved
    assert "needs 1 review from alice" in verdict.message


def test_a_login_named_like_a_person_of_the_policy_is_not_that_person() -> None:
    """Alice's forge login is alice-gh: someone who registers "alice" on the forge is not her."""
    verdict = _judge(Identity("forge", "alice"))
    assert not verdict.approved
    assert "alice may not approve changes to shop" in verdict.message
