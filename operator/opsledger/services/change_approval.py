"""What approving a Change asks of the CMDB repository and the forge: the standard-change
template, the proposal branch and its pull request, the merge read back from the protected
branch; and the change record written there once the change is past approval.

The rules (which of these a change needs, and what their answers mean) are in
`domain/change_approval.py`; these functions only ask and tell, and return what they found.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from opsledger.adapters.forge import ForgeError
from opsledger.domain import change_approval as approval_rules
from opsledger.domain import changes, standard_changes
from opsledger.domain.approval_policy import Identity, PolicyError, parse_policy
from opsledger.domain.change_facts import Effect, Facts, ReadBack, Template
from opsledger.domain.change_records import change_record, next_window, proposal_message
from opsledger.domain.changes import RecordVersion
from opsledger.domain.conditions import CMDB_SYNCED
from opsledger.domain.outcome import Outcome
from opsledger.domain.records import record_path, to_yaml
from opsledger.domain.times import parse_time, rfc3339
from opsledger.models.change import ChangePhase, ChangeSpec
from opsledger.models.common import ConditionStatus
from opsledger.models.policy import ALLOWED_SIGNERS_FILE, POLICY_FILE
from opsledger.services.context import Context
from opsledger.services.errors import CMDBUnavailableError
from opsledger.services.records import call, write_record

# What the CMDB and the forge raise when they do not answer: the approval is Unknown, retried.
UNAVAILABLE: Mapping[type[Exception], str] = {
    ForgeError: "ForgeUnavailable",
    CMDBUnavailableError: "CMDBUnavailable",
}


def _path(ctx: Context, namespace: str, name: str) -> str:
    return record_path(ctx.settings.cluster, namespace, "changes", name)


def _redacted(ctx: Context, spec: ChangeSpec) -> dict[str, Any]:
    return ctx.redactor.change_spec(spec.model_dump(mode="json", by_alias=True, exclude_none=True))


# -- finding out -------------------------------------------------------------------------


async def find_template(ctx: Context, spec: ChangeSpec, namespace: str) -> Template:
    """The standard change's template as the protected branch holds it now, and the target
    items its bounds are checked against."""
    assert ctx.cmdb is not None
    assert spec.template is not None
    path = changes.template_path(spec.template)
    await call(ctx.cmdb.refresh)
    versions = await call(ctx.cmdb.history, path)
    if not versions or versions[-1][3] is None:
        return Template(path)
    sha, committer, _, content = versions[-1]
    items = await asyncio.to_thread(_items, ctx, spec, namespace)
    return Template(path, sha, committer, content, items)


def template_fit(
    ctx: Context, spec: ChangeSpec, namespace: str, path: str, file: Path
) -> list[str]:
    """What of `spec` leaves the standard-change template in `file` (empty: it fits), its
    target items read from the cluster. Blocking: for the CLI."""
    try:
        template = standard_changes.parse_template(path, file.read_text())
    except standard_changes.TemplateError as exc:
        return [str(exc)]
    return standard_changes.misfits(template, spec, _items(ctx, spec, namespace))


def _items(ctx: Context, spec: ChangeSpec, namespace: str) -> dict[str, Mapping[str, Any] | None]:
    """Each target item's class, labels, service and source (None where there is none)."""
    found: dict[str, Mapping[str, Any] | None] = {}
    for name in spec.targets:
        item = ctx.kube.get_custom("configurationitems", name, namespace) if ctx.kube else None
        if item is None:
            found[name] = None
            continue
        item_spec = item.get("spec") or {}
        found[name] = {
            "class": (item.get("status") or {}).get("class"),
            "labels": (item.get("metadata") or {}).get("labels") or {},
            "service": item_spec.get("service"),
            "owner": item_spec.get("owner"),
            "source": item_spec.get("source") or {},
        }
    return found


async def find_read_back(ctx: Context, facts: Facts) -> ReadBack:
    """The merge that brought the wanted hash onto the protected branch, its pull request, and
    who approved it as the approval mode proves it, with the policy in force before it."""
    assert ctx.cmdb is not None
    await call(ctx.cmdb.refresh)
    raw = await call(ctx.cmdb.history, _path(ctx, facts.namespace, facts.name))
    history = [
        RecordVersion(sha, who, at, content)
        for sha, who, when, content in raw
        if (at := parse_time(when)) is not None  # git's strict ISO 8601 (%cI): always a time
    ]
    found = changes.find_approval(history, facts.wanted, facts.uid)
    pull = None
    number = facts.approval.get("pullRequestNumber")
    proposal = facts.approval.get("proposalCommit")
    if ctx.forge is not None and number:
        pull = await asyncio.to_thread(ctx.forge.get, int(number), proposal)
        repository = pull.head.rsplit(":", 1)[0]
        if repository.lower() != ctx.forge.repository.lower() or pull.head_commit != proposal:
            pull = None  # not the pull request of exactly this proposal, from this repository
    if found is None:
        return ReadBack(found, pull)
    # The policy files as the protected branch held them when the change was proposed: no
    # commit of the merge (a rebase or fast-forward brings several) can rewrite them to approve
    # itself.
    base = f"{proposal}^1" if proposal else f"{found.sha}^1"
    text = await call(ctx.cmdb.read_at, base, POLICY_FILE)
    try:
        policy, error = parse_policy(text), None
    except PolicyError as exc:
        policy, error = None, str(exc)
    mode = ctx.settings.approval_mode
    approvals: tuple[Identity, ...]
    settled = True
    if mode == "forge":
        reviewers = pull.approvers if pull is not None and pull.merged else ()
        approvals = tuple(Identity("forge", u) for u in reviewers)
        proof = "approving review(s)"
        # Gitea pushes a merge before it marks the pull request merged: wait for that
        settled = pull is None or not pull.open
    elif mode == "signed":
        path = _path(ctx, facts.namespace, facts.name)
        signed = await call(ctx.cmdb.signers, found.sha, proposal, ALLOWED_SIGNERS_FILE, base, path)
        # a signature counts only on a commit holding exactly this change's record
        binding = (facts.wanted, facts.uid)
        signers = [s for s, content in signed if changes.recorded_binding(content) == binding]
        approvals = tuple(Identity("signer", s) for s in dict.fromkeys(signers))
        proof = f"signed commit(s) by a key in {ALLOWED_SIGNERS_FILE}"
    else:
        approvals = (Identity("git", found.committer),)
        proof = "merge(s)"
    found_items = await asyncio.to_thread(_items, ctx, facts.spec, facts.namespace)
    items = tuple((i.get("service"), i.get("owner")) for i in found_items.values() if i)
    return ReadBack(
        found,
        pull,
        approvals=approvals,
        proof=proof,
        policy=policy,
        policy_error=error,
        items=items,
        settled=settled,
        strict=mode != "merge",
    )


async def find_branch(ctx: Context, facts: Facts) -> bool:
    """Whether the proposal branch is still there."""
    assert ctx.cmdb is not None
    branch = changes.proposal_branch(ctx.settings.cluster, facts.namespace, facts.name)
    return await call(ctx.cmdb.branch_exists, branch)


# -- proposing ---------------------------------------------------------------------------


async def propose(
    ctx: Context,
    facts: Facts,
    effects: Sequence[Effect],
    *,
    status: Mapping[str, Any],
    affected: Sequence[str],
) -> Outcome:
    """Push the proposal (PROPOSE) and open its pull request where a forge is configured
    (OPEN_PULL_REQUEST), saying where to approve it. `status` is the change's as it stands."""
    assert ctx.cmdb is not None
    out = Outcome()
    spec = facts.spec
    note = approval_rules.proposal_note(facts)
    message = proposal_message(
        cluster=ctx.settings.cluster,
        namespace=facts.namespace,
        name=facts.name,
        spec=spec,
        status=status,
        affected=affected,
        window=next_window(facts.now, spec, facts.level),
        note=note,
        redactor=ctx.redactor,
    )
    branch = changes.proposal_branch(ctx.settings.cluster, facts.namespace, facts.name)
    approval = dict(facts.approval)
    if Effect.PROPOSE in effects:
        record = change_record(
            cluster=ctx.settings.cluster,
            namespace=facts.namespace,
            name=facts.name,
            uid=facts.uid,
            spec=_redacted(ctx, spec),
            spec_hash=facts.wanted,
            phase=facts.phase,
            status=status,
            targets=spec.targets,
            proposal=True,
        )
        path = _path(ctx, facts.namespace, facts.name)
        commit = await call(ctx.cmdb.propose, branch, path, to_yaml(record), message)
        approval = approval_rules.fresh_approval(branch, commit, facts.wanted)
        out.status["approval"] = approval
    if Effect.OPEN_PULL_REQUEST in effects:
        out.merge(await _open_pull_request(ctx, branch, approval, message, note))
    return out


async def _open_pull_request(
    ctx: Context, branch: str, approval: Mapping[str, Any], message: str, note: str
) -> Outcome:
    """Open (or update) the proposal's pull request where a forge is configured; say where to
    approve either way."""
    assert ctx.cmdb is not None
    out = Outcome()
    pull = None
    if ctx.forge is not None:
        title, _, body = message.partition("\n")
        try:
            pull = await asyncio.to_thread(
                ctx.forge.open, branch, ctx.cmdb.branch, title, body.strip() + "\n"
            )
        except ForgeError as exc:
            out.conditions.append(approval_rules.pull_request_failed(branch, str(exc)))
            return out
        out.status["approval"] = approval_rules.with_pull_request(approval, pull)
    out.conditions.append(approval_rules.awaiting_approval(branch, pull, ctx.cmdb.branch, note))
    return out


# -- the record --------------------------------------------------------------------------


async def record(
    ctx: Context,
    *,
    namespace: str,
    name: str,
    uid: str | None,
    spec: ChangeSpec,
    phase: ChangePhase | None,
    status: Mapping[str, Any],
    now: datetime,
) -> Outcome:
    """Write the change record to the protected branch once the change is past approval.

    While a change waits for approval only its proposal branch holds it: a record on the
    protected branch carrying the wanted hash is exactly what approves a change, so the operator
    never writes one itself. Later records carry the hash of the approved spec only.
    """
    out = Outcome()
    if ctx.cmdb is None or phase in (None, ChangePhase.PENDING_APPROVAL):
        return out
    approval = status.get("approval") or {}
    approved_hash = approval.get("specHash") if approval.get("approvedAt") else None
    path = _path(ctx, namespace, name)
    content = change_record(
        cluster=ctx.settings.cluster,
        namespace=namespace,
        name=name,
        uid=uid,
        spec=_redacted(ctx, spec),
        spec_hash=approved_hash,
        phase=phase,
        status=status,
        targets=spec.targets,
        proposal=False,
    )
    reason = f"change {namespace}/{name}: {phase.value if phase else ''}"
    commit, _, error = await write_record(ctx, path, to_yaml(content), reason)
    if commit is None:
        out.condition(CMDB_SYNCED, ConditionStatus.FALSE, "CMDBUnavailable", f"{error}; retrying")
        return out
    previous = status.get("cmdb") or {}
    if previous.get("commit") != commit.sha:
        out.status["cmdb"] = {"path": path, "commit": commit.sha, "syncedAt": rfc3339(now)}
    out.condition(CMDB_SYNCED, ConditionStatus.TRUE, "Synced", f"{path} at {commit.sha[:12]}")
    return out
