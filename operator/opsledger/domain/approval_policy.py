"""Who may approve a change, and whether the approvals given are enough: the CMDB repository's
approval policy (`models/policy.py`) applied to one change.

An approval is an identity proven by the approval mode: a forge login whose review approved the
pull request (`forge`), an SSH signing principal from the allowed-signers file whose signature
is on the commit that brought the record in (`signed`), or the merge's committer e-mail
(`merge`, which trusts whoever may push to the protected branch). Each identity is resolved to a
person of the policy; the requester (whom the API server named) never counts, nor does anyone
the matching rule does not allow, and each person counts once.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from opsledger.domain.validation import parse_yaml_file
from opsledger.models.policy import POLICY_FILE, ApprovalPolicy, PolicyRule

# How an identity was proven, and the field of `Person` that names it there.
KINDS = {"kubernetes": "kubernetes", "forge": "forge", "signer": "signers", "git": "git"}


class PolicyError(ValueError):
    """The approval policy file cannot be used; the message names the file and the problem."""


def parse_policy(text: str | None) -> ApprovalPolicy | None:
    """The policy in `text` (None when there is no file), or PolicyError saying what is wrong."""
    if text is None:
        return None
    policy = parse_yaml_file(
        ApprovalPolicy,
        POLICY_FILE,
        text,
        error=PolicyError,
        fields="rules, required, groups, people",
    )
    low = [k for k, v in policy.required.items() if v < 1]
    if low:
        raise PolicyError(f"{POLICY_FILE}: required.{low[0]} must be at least 1")
    return policy


@dataclass(frozen=True)
class Identity:
    """A name proven in one place: kind is kubernetes, forge, signer or git."""

    kind: str
    name: str


@dataclass(frozen=True)
class Judgement:
    approved: bool
    approvers: tuple[str, ...]  # the people who counted, by their policy names
    message: str


def person_of(policy: ApprovalPolicy | None, identity: Identity) -> str:
    """The policy's name for the person behind `identity`; an identity no person lists stands
    for itself, except that it cannot pass for a person the policy does list (a forge login
    "alice" is not the policy's alice unless alice's entry says so)."""
    field = KINDS[identity.kind]
    wanted = {identity.name}
    if identity.kind == "git" and "<" in identity.name:  # "Name <e-mail>": the e-mail
        wanted.add(identity.name.rsplit("<", 1)[1].rstrip(">").strip())
    people = policy.people if policy else {}
    for name, person in people.items():
        value = getattr(person, field)
        names = value if isinstance(value, list) else [value] if value else []
        if wanted & set(names):
            return name
    if identity.name in people:
        return f"{identity.kind}:{identity.name}"  # unlisted here: not that person
    return identity.name


def _matches(value: str, globs: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, g) for g in globs)


def _rule(
    policy: ApprovalPolicy, service: str, namespace: str, owner: str | None
) -> PolicyRule | None:
    """The last rule matching one subject of a change (a service, and an item's owner)."""
    found = None
    for rule in policy.rules:  # the last match wins, as in CODEOWNERS
        match = rule.match
        owned = match.owners == ["*"] or (owner is not None and _matches(owner, match.owners))
        if _matches(service, match.services) and _matches(namespace, match.namespaces) and owned:
            found = rule
    return found


def allowed_people(policy: ApprovalPolicy, rule: PolicyRule) -> set[str]:
    people = set(rule.approvers.users)
    for group in rule.approvers.groups:
        people |= set(policy.groups.get(group, ()))
    return people


def judge(
    policy: ApprovalPolicy | None,
    *,
    service: str,
    namespace: str,
    requester: str | None,
    risk: str | None,
    given: Sequence[Identity],
    proof: str,
    items: Sequence[tuple[str | None, str | None]] = (),
) -> Judgement:
    """Whether the approvals `given` (proven by `proof`, e.g. "approving review(s)") approve a
    change to `service` in `namespace` requested by `requester` at `risk`, touching `items`
    ((service, owner) of each target item).

    Every subject of the change (its service, and each item's service and owner) is covered by
    the last rule matching it, and *every* such rule must be satisfied: naming one more item of
    a lenient team cannot choose the rule. Without a policy file anyone but the requester may
    approve, and one approval is enough.
    """
    me = person_of(policy, Identity("kubernetes", requester)) if requester else None
    rules: list[set[str]] | None = None
    needed = 1
    if policy is not None:
        subjects = [(service, None), *((s or service, o) for s, o in items)]
        rules = []
        for subject, owner in subjects:
            rule = _rule(policy, subject, namespace, owner)
            if rule is None:
                whose = f" (items of {owner})" if owner else ""
                return Judgement(
                    False,
                    (),
                    f"no rule of {POLICY_FILE} covers service {subject}{whose} in namespace "
                    f"{namespace}: nobody may approve it; add a rule there (by pull request)",
                )
            people = allowed_people(policy, rule)
            if people not in rules:
                rules.append(people)
        # an unassessed (or unknown) risk needs what the highest level needs
        needed = policy.required.get(risk or "", max(policy.required.values(), default=1))
    anyone = set().union(*rules) if rules else None
    counted: list[str] = []
    refused: list[str] = []
    for identity in given:
        person = person_of(policy, identity)
        if person in counted:
            continue
        if me is not None and person == me:
            refused.append(f"{identity.name} is the requester")
        elif anyone is not None and person not in anyone:
            refused.append(f"{identity.name} may not approve changes to {service}")
        else:
            counted.append(person)
    level = f"{risk} risk" if risk else "this change"
    # each rule's approvers (None: anyone, without a policy) must give `needed` approvals
    groups: list[set[str] | None] = list(rules) if rules is not None else [None]
    short = [g for g in groups if len([p for p in counted if g is None or p in g]) < needed]
    if not short:
        return Judgement(True, tuple(counted), f"approved by {', '.join(counted)}")
    first = short[0]
    mine = [p for p in counted if first is None or p in first]
    has = f"{len(mine)} ({', '.join(mine)})" if mine else "none"
    why = f"; not counted: {'; '.join(refused)}" if refused else ""
    who = f" from {', '.join(sorted(first))}" if first is not None else ""
    return Judgement(
        False,
        tuple(counted),
        f"{level} needs {needed} {proof}{who}, other than the requester; has {has}{why}",
    )


def judge_exception(
    policy: ApprovalPolicy | None,
    *,
    requester: str | None,
    given: Sequence[Identity],
    proof: str,
) -> Judgement:
    """Whether the approvals `given` also approve the change's freeze exception: `required` of
    the people the policy's `exceptions` rule names, other than the requester. Without a policy
    file anyone but the requester may (one approval, as for the change itself); a policy without
    an `exceptions` rule lets nobody approve one."""
    if policy is not None and policy.exceptions is None:
        return Judgement(
            False,
            (),
            f"{POLICY_FILE} has no exceptions rule, so nobody may approve a freeze exception: "
            "add one (who may, and how many) by pull request, or drop spec.freezeException",
        )
    me = person_of(policy, Identity("kubernetes", requester)) if requester else None
    allowed = (
        allowed_people(policy, PolicyRule(approvers=policy.exceptions.approvers))
        if policy is not None and policy.exceptions is not None
        else None
    )
    needed = policy.exceptions.required if policy is not None and policy.exceptions else 1
    counted: list[str] = []
    for identity in given:
        person = person_of(policy, identity)
        if person != me and person not in counted and (allowed is None or person in allowed):
            counted.append(person)
    if len(counted) >= needed:
        return Judgement(True, tuple(counted), f"freeze exception approved by {', '.join(counted)}")
    who = f" from {', '.join(sorted(allowed))}" if allowed is not None else ""
    has = f"{len(counted)} ({', '.join(counted)})" if counted else "none"
    return Judgement(
        False,
        tuple(counted),
        f"its freeze exception needs {needed} {proof}{who}, other than the requester; has {has}",
    )
