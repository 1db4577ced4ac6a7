"""How a pending Change is approved, as a chain of policies asked in order.

An emergency change approves itself and is reviewed afterwards; a standard change is
pre-approved by its template on the CMDB's protected branch; a normal change is proposed (a
branch holding its record, and a pull request where a forge is configured) and approved when
that proposal is merged, or rejected when it is closed or deleted unmerged. Each policy returns
a `Move`, or None to leave the change to the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opsledger.domain import approval_policy, changes, standard_changes
from opsledger.domain.change_facts import (
    Effect,
    Facts,
    Move,
    Need,
    PullRequest,
    ReadBack,
    Rule,
    enter,
    need,
    stay,
)
from opsledger.domain.changes import RecordVersion
from opsledger.domain.outcome import ConditionUpdate
from opsledger.domain.times import rfc3339
from opsledger.models.change import ChangeType
from opsledger.models.common import ConditionStatus

APPROVED = "Approved"


def _approved(status: ConditionStatus, reason: str, message: str) -> ConditionUpdate:
    return ConditionUpdate(APPROVED, status, reason, message)


def approval_void(approval: Mapping[str, Any], wanted: str) -> bool:
    """An approval binds the spec's hash: an edit after approval voids it."""
    return bool(approval.get("approvedAt")) and approval.get("specHash") != wanted


def needs_proposal(approval: Mapping[str, Any], wanted: str) -> bool:
    """No proposal of exactly this spec has been pushed yet."""
    return approval.get("specHash") != wanted or not approval.get("proposalCommit")


# -- the policies ------------------------------------------------------------------------


def emergency(f: Facts) -> Move | None:
    """An emergency change starts now; its approval says it is to be reviewed afterwards."""
    if not f.emergency:
        return None
    approval = {
        "approver": "emergency change (post-implementation review required)",
        "approvedAt": rfc3339(f.now),
        "specHash": f.wanted,
    }
    return enter(
        Rule.EMERGENCY,
        "emergency change: starts now, reviewed afterwards",
        status={"approval": approval, "reviewRequired": True},
        conditions=(_approved(ConditionStatus.TRUE, "Emergency", "emergency: review afterwards"),),
    )


def no_cmdb(f: Facts) -> Move | None:
    """Approvals are read from the CMDB: without one, a change waits."""
    if f.protected_branch is not None:
        return None
    return stay(
        _approved(
            ConditionStatus.FALSE,
            "NoCMDB",
            "no CMDB remote is configured (OPSLEDGER_CMDB_URL): approvals are read from it, "
            "so only emergency changes can run",
        )
    )


def template_misfits(f: Facts) -> list[str] | None:
    """What of a standard change leaves its template (empty: it fits); None: not a standard
    change, or its template is not known yet."""
    template = f.template
    if f.spec.type != ChangeType.STANDARD or template is None or template.commit is None:
        return None
    try:
        parsed = standard_changes.parse_template(template.path, template.content or "")
    except standard_changes.TemplateError as exc:
        return [str(exc)]
    return standard_changes.misfits(parsed, f.spec, template.items)


def standard(f: Facts) -> Move | None:
    """A standard change is pre-approved while its template is on the protected branch and its
    plan fits the template's bounds; one that leaves them is proposed as a normal change."""
    if f.spec.type != ChangeType.STANDARD:
        return None
    template = f.template
    if template is None:
        return need(Need.TEMPLATE)
    if template.commit is None:
        return stay(
            _approved(
                ConditionStatus.FALSE,
                "TemplateNotFound",
                f"standard-change template {template.path} is not on {f.protected_branch}; add "
                "it there, or make this a normal change",
            )
        )
    if template_misfits(f):
        return None  # a normal change now: proposed, approved by merge
    approval = {
        "approver": f"standard-change template {f.spec.template} (by {template.committer})",
        "commit": template.commit,
        "approvedAt": rfc3339(f.now),
        "specHash": f.wanted,
    }
    return enter(
        Rule.PRE_APPROVED,
        f"pre-approved by standard-change template {f.spec.template}",
        status={"approval": approval},
        conditions=(_approved(ConditionStatus.TRUE, "PreApproved", f"template {template.path}"),),
    )


def proposal_note(f: Facts) -> str:
    """Why a standard change is proposed like a normal one (empty for any other change)."""
    found = template_misfits(f)
    if not found:
        return ""
    return (
        f"not pre-approved: it leaves standard-change template {f.spec.template} "
        f"({'; '.join(found)}); "
    )


def propose(f: Facts) -> Move | None:
    """A normal change without a proposal of exactly its spec is proposed (once the proposal
    can say what reviewers need to know)."""
    if not needs_proposal(f.approval, f.wanted):
        return None
    blocker = proposal_blocker(f)
    if blocker is not None:
        return stay(blocker)
    return stay(effects=(Effect.PROPOSE, Effect.OPEN_PULL_REQUEST))


def pull_request(f: Facts) -> Move | None:
    """A proposal gets its pull request where a forge is configured."""
    if not f.forge or f.approval.get("pullRequestNumber"):
        return None
    return stay(effects=(Effect.OPEN_PULL_REQUEST,))


def merged(f: Facts) -> Move | None:
    """Approved by the merge that brought the record onto the protected branch; rejected when
    its pull request was closed or its branch deleted without merging."""
    if f.read_back is None:
        return need(Need.APPROVAL)
    return read_back(f, f.read_back)


APPROVAL_POLICIES: tuple[Callable[[Facts], Move | None], ...] = (
    emergency,
    no_cmdb,
    standard,
    propose,
    pull_request,
    merged,
)


def seek_approval(f: Facts) -> Move:
    """The first policy's move."""
    for policy in APPROVAL_POLICIES:
        move = policy(f)
        if move is not None:
            return move
    return stay()  # unreachable: `merged` always decides


# -- what the policies say ---------------------------------------------------------------


def proposal_blocker(f: Facts) -> ConditionUpdate | None:
    """A proposal tells reviewers the window, the risk and the affected items: it waits until
    the service's ServiceLevel and the target items are known, rather than tell them wrong."""
    if f.level is None:
        return _approved(
            ConditionStatus.FALSE,
            "ServiceLevelNotFound",
            f"not proposed yet: no ServiceLevel with spec.service={f.spec.service!r} in "
            f"{f.namespace} (its windows and budget go into the proposal); create it or fix "
            "spec.service",
        )
    if f.unknown_targets:
        return _approved(
            ConditionStatus.FALSE,
            "TargetsNotFound",
            f"not proposed yet: no ConfigurationItem {', '.join(f.unknown_targets)} in "
            f"{f.namespace}; create them or fix spec.targets",
        )
    return None


def fresh_approval(branch: str, commit: str, wanted: str) -> dict[str, Any]:
    """status.approval for a proposal just pushed. Kopf writes status as a merge patch: a stale
    approval's keys must be nulled."""
    return {
        "proposalBranch": branch,
        "proposalCommit": commit,
        "specHash": wanted,
        "commit": None,
        "approver": None,
        "approvedAt": None,
        "reviewers": None,
        "pullRequest": None,
        "pullRequestNumber": None,
    }


def with_pull_request(approval: Mapping[str, Any], pull: PullRequest) -> dict[str, Any]:
    return {**approval, "pullRequest": pull.url, "pullRequestNumber": pull.number}


def awaiting_approval(
    branch: str, pull: PullRequest | None, protected: str, note: str = ""
) -> ConditionUpdate:
    """Where reviewers approve the proposal on `branch` (after `note`, why it is proposed)."""
    where = f"pull request #{pull.number} ({pull.url})" if pull else f"branch {branch} of the CMDB"
    return _approved(
        ConditionStatus.FALSE,
        "AwaitingApproval" if not note else "OutsideTemplate",
        f"{note}proposed in {where}; merge it into {protected} to approve",
    )


def pull_request_failed(branch: str, error: str) -> ConditionUpdate:
    return _approved(
        ConditionStatus.FALSE,
        "ForgeUnavailable",
        f"proposed on branch {branch} of the CMDB, but the pull request could not be opened: "
        f"{error}; retrying",
    )


def approval_unavailable(reason: str, error: str) -> ConditionUpdate:
    """The CMDB (CMDBUnavailable) or the forge (ForgeUnavailable) did not answer."""
    return _approved(ConditionStatus.UNKNOWN, reason, f"{error}; retrying")


def _judged(f: Facts, back: ReadBack, found: RecordVersion, branch: str) -> Move:
    """The record is on the protected branch: approved when the approvals proven for it satisfy
    the approval policy in force before it came in; otherwise it waits, saying what is missing."""
    if not back.settled:
        return stay()  # the record is in, the forge is about to say by whose approval
    if back.policy_error is not None:
        return stay(
            _approved(
                ConditionStatus.FALSE,
                "PolicyInvalid",
                f"{branch} was merged in {found.sha[:12]}, but {back.policy_error}; fix it by "
                "pull request",
            )
        )
    # A change made for a ServiceRequest: who asked for it is the one who may not approve it.
    asker = f.spec.on_behalf_of or f.spec.requester
    requester = asker.username if asker else None
    if requester is None and back.strict:
        return stay(
            _approved(
                ConditionStatus.FALSE,
                "RequesterUnknown",
                f"{branch} was merged in {found.sha[:12]}, but the Change records no requester "
                "(OpsLedger's mutating webhook did not run when it was created), so nobody can "
                "be told apart from them: cancel it and create it again with the webhook "
                "installed",
            )
        )
    verdict = approval_policy.judge(
        back.policy,
        service=f.spec.service,
        namespace=f.namespace,
        requester=requester,
        risk=f.risk,
        given=back.approvals,
        proof=back.proof,
        items=back.items,
    )
    if not verdict.approved:
        return stay(
            _approved(
                ConditionStatus.FALSE,
                "ApprovalsMissing",
                f"{branch} was merged in {found.sha[:12]}, but that approves nothing yet: "
                f"{verdict.message}",
            )
        )
    excepted = None
    if f.spec.freeze_exception is not None:
        excepted = approval_policy.judge_exception(
            back.policy, requester=requester, given=back.approvals, proof=back.proof
        )
        if not excepted.approved:
            return stay(
                _approved(
                    ConditionStatus.FALSE,
                    "ExceptionNotApproved",
                    f"{branch} was merged in {found.sha[:12]} and the change is approved by "
                    f"{', '.join(verdict.approvers)}, but {excepted.message}",
                )
            )
    reviewers = list(back.pull.approvers) if back.pull else []
    approval = {
        **f.approval,
        "commit": found.sha,
        "approver": ", ".join(verdict.approvers),
        "approvedAt": rfc3339(found.committed_at),
        "reviewers": reviewers or None,
        "exceptionApprover": ", ".join(excepted.approvers) if excepted else None,
    }
    by = approval["approver"]
    return enter(
        Rule.MERGED,
        f"approved by {by}: {branch} merged in {found.sha[:12]}",
        status={"approval": approval},
        conditions=(_approved(ConditionStatus.TRUE, "Merged", f"approved by {by}"),),
    )


def read_back(f: Facts, back: ReadBack) -> Move:
    """What the proposal's fate means for the change."""
    branch = changes.proposal_branch(f.cluster, f.namespace, f.name)
    pull = back.pull
    if back.found is not None:
        return _judged(f, back, back.found, branch)
    if pull is not None and not pull.open and not pull.merged:
        return enter(
            Rule.PULL_REQUEST_CLOSED,
            f"pull request #{pull.number} ({pull.url}) was closed without merging",
            warning=True,
            conditions=(
                _approved(
                    ConditionStatus.FALSE,
                    "PullRequestClosed",
                    f"pull request #{pull.number} was closed without merging",
                ),
            ),
        )
    if pull is not None and pull.merged:
        # The forge merged it (a squash merge deletes the branch at once), but the merge is not
        # on the protected branch as fetched yet: wait for it, it is no deletion.
        return stay()
    if back.branch_exists is None:
        return need(Need.BRANCH)
    if back.branch_exists:
        return stay()  # still open: the reviewers have not decided
    return enter(
        Rule.PROPOSAL_DELETED,
        f"the proposal branch {branch} was deleted without being merged",
        warning=True,
        conditions=(
            _approved(
                ConditionStatus.FALSE,
                "ProposalDeleted",
                f"branch {branch} was deleted without being merged",
            ),
        ),
    )
