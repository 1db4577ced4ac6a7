"""Approval of a change: the proposal branch, the forge's pull request, the merge that
approves it read back from the protected branch, standard-change templates, and the
change record in the CMDB."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from opsledger.adapters.forge import ForgeError
from opsledger.adapters.gitcmdb import CMDBError
from opsledger.domain import changes
from opsledger.domain.changes import RecordVersion
from opsledger.domain.records import record_path, to_yaml
from opsledger.domain.windows import rfc3339
from opsledger.handlers.change_steps import (
    APPROVED,
    CMDB_SYNCED,
    Step,
)
from opsledger.models.change import ChangePhase, ChangeSpec, ChangeType
from opsledger.models.common import ConditionStatus
from opsledger.models.records import ChangeRecord, RecordMetadata
from opsledger.models.servicelevel import ServiceLevelSpec
from opsledger.services.context import Context

# -- approval ----------------------------------------------------------------------------


async def _open_pull_request(
    ctx: Context, step: Step, approval: dict[str, Any], message: str
) -> None:
    """Open (or update) the proposal's pull request where a forge is configured; say where to
    approve either way."""
    assert ctx.cmdb is not None
    branch = str(approval["proposalBranch"])
    where = f"branch {branch} of the CMDB"
    if ctx.forge is not None:
        title, _, body = message.partition("\n")
        try:
            pull = await asyncio.to_thread(
                ctx.forge.open, branch, ctx.cmdb.branch, title, body.strip() + "\n"
            )
        except ForgeError as exc:
            step.condition(
                APPROVED,
                ConditionStatus.FALSE,
                "ForgeUnavailable",
                f"proposed on {where}, but the pull request could not be opened: {exc}; retrying",
            )
            return
        approval.update({"pullRequest": pull.url, "pullRequestNumber": pull.number})
        step.status["approval"] = approval
        where = f"pull request #{pull.number} ({pull.url})"
    step.condition(
        APPROVED,
        ConditionStatus.FALSE,
        "AwaitingApproval",
        f"proposed in {where}; merge it into {ctx.cmdb.branch} to approve",
    )


async def seek_approval(
    ctx: Context,
    step: Step,
    spec: ChangeSpec,
    level: Mapping[str, Any] | None,
    *,
    wanted: str,
    approval: dict[str, Any],
) -> None:
    meta = step.body.metadata
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    if spec.type == ChangeType.EMERGENCY:
        step.status["approval"] = {
            "approver": "emergency change (post-implementation review required)",
            "approvedAt": rfc3339(step.now),
            "specHash": wanted,
        }
        step.status["reviewRequired"] = True
        step.condition(APPROVED, ConditionStatus.TRUE, "Emergency", "emergency: review afterwards")
        step.enter(ChangePhase.APPROVED, "emergency change: starts now, reviewed afterwards")
        return
    if ctx.cmdb is None:
        step.condition(
            APPROVED,
            ConditionStatus.FALSE,
            "NoCMDB",
            "no CMDB remote is configured (OPSLEDGER_CMDB_URL): approvals are read from it, so "
            "only emergency changes can run",
        )
        return
    cmdb = ctx.cmdb
    try:
        if spec.type == ChangeType.STANDARD:
            await _standard_approval(ctx, step, spec, wanted)
            return
        branch = changes.proposal_branch(ctx.settings.cluster, namespace, name)
        path = record_path(ctx.settings.cluster, namespace, "changes", name)
        if approval.get("specHash") != wanted or not approval.get("proposalCommit"):
            if not _ready_to_propose(step, spec, level):
                return
            content = to_yaml(change_record(ctx, step, spec, wanted, proposal=True))
            message = _proposal_message(ctx, step, spec, level)
            commit = await asyncio.to_thread(cmdb.propose, branch, path, content, message)
            approval = {
                "proposalBranch": branch,
                "proposalCommit": commit,
                "specHash": wanted,
                # Kopf writes status as a merge patch: a stale approval's keys must be nulled.
                "commit": None,
                "approver": None,
                "approvedAt": None,
                "reviewers": None,
                "pullRequest": None,
                "pullRequestNumber": None,
            }
            step.status["approval"] = approval
            await _open_pull_request(ctx, step, approval, message)
            return
        if ctx.forge is not None and not approval.get("pullRequestNumber"):
            message = _proposal_message(ctx, step, spec, level)
            await _open_pull_request(ctx, step, approval, message)
            return
        await asyncio.to_thread(cmdb.refresh)
        raw = await asyncio.to_thread(cmdb.history, path)
        history = [
            RecordVersion(sha, who, datetime.fromisoformat(when), content)
            for sha, who, when, content in raw
        ]
        found = changes.find_approval(history, wanted)
        pull = None
        if ctx.forge is not None and approval.get("pullRequestNumber"):
            pull = await asyncio.to_thread(ctx.forge.get, int(approval["pullRequestNumber"]))
        if found is not None:
            reviewers = list(pull.approvers) if pull else []
            step.status["approval"] = {
                **approval,
                "commit": found.sha,
                "approver": found.committer,
                "approvedAt": rfc3339(found.committed_at),
                "reviewers": reviewers or None,
            }
            by = found.committer + (f", reviewed by {', '.join(reviewers)}" if reviewers else "")
            step.condition(APPROVED, ConditionStatus.TRUE, "Merged", f"approved by {by}")
            step.enter(
                ChangePhase.APPROVED, f"approved by {by}: {branch} merged in {found.sha[:12]}"
            )
        elif pull is not None and not pull.open and not pull.merged:
            step.condition(
                APPROVED,
                ConditionStatus.FALSE,
                "PullRequestClosed",
                f"pull request #{pull.number} was closed without merging",
            )
            step.enter(
                ChangePhase.REJECTED,
                f"pull request #{pull.number} ({pull.url}) was closed without merging",
                warning=True,
            )
        elif not await asyncio.to_thread(cmdb.branch_exists, branch):
            step.condition(
                APPROVED,
                ConditionStatus.FALSE,
                "ProposalDeleted",
                f"branch {branch} was deleted without being merged",
            )
            step.enter(
                ChangePhase.REJECTED,
                f"the proposal branch {branch} was deleted without being merged",
                warning=True,
            )
    except ForgeError as exc:
        step.condition(APPROVED, ConditionStatus.UNKNOWN, "ForgeUnavailable", f"{exc}; retrying")
    except CMDBError as exc:
        step.condition(APPROVED, ConditionStatus.UNKNOWN, "CMDBUnavailable", f"{exc}; retrying")


def _ready_to_propose(step: Step, spec: ChangeSpec, level: Mapping[str, Any] | None) -> bool:
    """A proposal tells reviewers the window, the risk and the affected items: it waits until the
    service's ServiceLevel and the target items are known, rather than tell them wrong."""
    namespace = step.body.metadata.get("namespace")
    if level is None:
        step.condition(
            APPROVED,
            ConditionStatus.FALSE,
            "ServiceLevelNotFound",
            f"not proposed yet: no ServiceLevel with spec.service={spec.service!r} in {namespace} "
            "(its windows and budget go into the proposal); create it or fix spec.service",
        )
        return False
    if step.unknown_targets:
        step.condition(
            APPROVED,
            ConditionStatus.FALSE,
            "TargetsNotFound",
            f"not proposed yet: no ConfigurationItem {', '.join(step.unknown_targets)} in "
            f"{namespace}; create them or fix spec.targets",
        )
        return False
    return True


async def _standard_approval(ctx: Context, step: Step, spec: ChangeSpec, wanted: str) -> None:
    assert ctx.cmdb is not None
    assert spec.template is not None
    path = changes.template_path(spec.template)
    await asyncio.to_thread(ctx.cmdb.refresh)
    versions = await asyncio.to_thread(ctx.cmdb.history, path)
    if not versions or versions[-1][3] is None:
        step.condition(
            APPROVED,
            ConditionStatus.FALSE,
            "TemplateNotFound",
            f"standard-change template {path} is not on {ctx.cmdb.branch}; add it there, or make "
            "this a normal change",
        )
        return
    sha, committer, _, _ = versions[-1]
    step.status["approval"] = {
        "approver": f"standard-change template {spec.template} (by {committer})",
        "commit": sha,
        "approvedAt": rfc3339(step.now),
        "specHash": wanted,
    }
    step.condition(APPROVED, ConditionStatus.TRUE, "PreApproved", f"template {path}")
    step.enter(ChangePhase.APPROVED, f"pre-approved by standard-change template {spec.template}")


def _proposal_message(
    ctx: Context, step: Step, spec: ChangeSpec, level: Mapping[str, Any] | None
) -> str:
    """The proposal commit's message; a forge's pull request takes its title and body from it."""
    status = step.merged_status()
    meta = step.body.metadata
    namespace, name = meta.get("namespace"), meta.get("name")
    lines = [
        f"change({ctx.settings.cluster}/{namespace}/{name}): {spec.summary}"[:120],
        "",
        f"- **Type:** {spec.type}",
        f"- **Service:** {spec.service}",
        f"- **Targets:** {', '.join(spec.targets) or 'none'}",
        f"- **Affected items:** {', '.join(step.affected) or 'none'}",
    ]
    window = _next_window(step, spec, level)
    lines.append(f"- **Window:** {window}")
    if status.get("risk"):
        factors = ", ".join(status.get("riskFactors") or []) or "no factors"
        lines.append(f"- **Risk:** {status['risk']} (score {status.get('riskScore')}: {factors})")
    if status.get("conflicts"):
        lines.append(f"- **Conflicts:** {', '.join(status['conflicts'])}")
    lines.append("")
    if spec.plan:
        lines.append("Plan:")
        for p in spec.plan:
            lines.append(f"1. {p.patch_type} patch of {p.target.kind} {p.target.name}:")
            lines.append(f"   `{json.dumps(p.patch, sort_keys=True)[:500]}`")
    else:
        lines.append("No plan: a permit for manual work while the change is in progress.")
    if spec.checks and (spec.checks.pre or spec.checks.post):
        lines.append("")
        lines.append("Health checks:")
        for when, checks in (("pre", spec.checks.pre), ("post", spec.checks.post)):
            for c in checks:
                bound = f"below {c.below:g}" if c.below is not None else f"above {c.above:g}"
                lines.append(f"- {when}: {c.name} `{c.query}` {bound}")
    lines += ["", "Merge this proposal to approve the change; close or delete it to reject it."]
    return "\n".join(lines) + "\n"


def _next_window(step: Step, spec: ChangeSpec, level: Mapping[str, Any] | None) -> str:
    """The window the change would run in, as text for reviewers."""
    if level is None:
        return f"unknown: no ServiceLevel for service {spec.service}"
    try:
        sl = ServiceLevelSpec.model_validate(level.get("spec") or {})
    except ValidationError:
        return "unknown: the service's ServiceLevel is invalid"
    decision = changes.change_window(step.now, spec, sl)
    if decision.next is None:
        return f"none: {decision.reason}"
    return f"{rfc3339(decision.next.start)} to {rfc3339(decision.next.end)}"


# -- the CMDB record ---------------------------------------------------------------------


def change_record(
    ctx: Context, step: Step, spec: ChangeSpec, wanted: str | None, *, proposal: bool
) -> ChangeRecord:
    meta = step.body.metadata
    status = step.merged_status()
    redacted = ctx.redactor.mapping(spec.model_dump(mode="json", by_alias=True, exclude_none=True))
    return ChangeRecord.model_validate(
        {
            "metadata": RecordMetadata(
                cluster=ctx.settings.cluster,
                namespace=str(meta.get("namespace")),
                name=str(meta.get("name")),
            ),
            "spec": redacted,
            "specHash": wanted,
            "phase": ChangePhase.PENDING_APPROVAL if proposal else step.phase,
            # (None values only null stale keys in status' merge patch)
            "approval": None
            if proposal
            else {k: v for k, v in (status.get("approval") or {}).items() if v is not None},
            "window": status.get("window"),
            "risk": status.get("risk"),
            "affected": list(spec.targets),
            "incident": None if proposal else status.get("incident"),
            "transitions": [] if proposal else status.get("transitions") or [],
        }
    )


async def record(ctx: Context, step: Step, spec: ChangeSpec) -> None:
    """Write the change record to the protected branch once the change is past approval.

    While a change waits for approval only its proposal branch holds it: a record on the
    protected branch carrying the wanted hash is exactly what approves a change, so the operator
    never writes one itself. Later records carry the hash of the approved spec only.
    """
    if ctx.cmdb is None or step.phase in (None, ChangePhase.PENDING_APPROVAL):
        return
    approval = step.merged_status().get("approval") or {}
    approved_hash = approval.get("specHash") if approval.get("approvedAt") else None
    meta = step.body.metadata
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    path = record_path(ctx.settings.cluster, namespace, "changes", name)
    content = to_yaml(change_record(ctx, step, spec, approved_hash, proposal=False))
    reason = f"change {namespace}/{name}: {step.phase.value if step.phase else ''}"
    try:
        commit = await ctx.cmdb.write(path, content, reason)
    except CMDBError as exc:
        step.condition(CMDB_SYNCED, ConditionStatus.FALSE, "CMDBUnavailable", f"{exc}; retrying")
        return
    previous = step.merged_status().get("cmdb") or {}
    if previous.get("commit") != commit.sha:
        step.status["cmdb"] = {"path": path, "commit": commit.sha, "syncedAt": rfc3339(step.now)}
    step.condition(CMDB_SYNCED, ConditionStatus.TRUE, "Synced", f"{path} at {commit.sha[:12]}")
