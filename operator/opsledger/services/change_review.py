"""What an emergency change's post-implementation review asks of the CMDB repository and the
forge: propose the review record once the change has ended, and read back whether reviewers
merged it. The rules are in `domain/change_review.py`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opsledger.adapters.forge import ForgeError
from opsledger.domain import change_review
from opsledger.domain.outcome import Outcome
from opsledger.domain.records import record_path
from opsledger.domain.times import rfc3339
from opsledger.models.change import ChangePhase, ChangeSpec
from opsledger.models.common import ConditionStatus
from opsledger.services.context import Context
from opsledger.services.records import call

REVIEWED = "Reviewed"


async def review(
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
    """Propose the review of an ended emergency change, or see whether it was merged."""
    out = Outcome()
    if ctx.cmdb is None or not change_review.review_due(phase, status):
        return out
    cluster = ctx.settings.cluster
    path = record_path(cluster, namespace, "reviews", name)
    current = status.get("review") or {}
    if current.get("commit"):
        await call(ctx.cmdb.refresh)
        if change_review.reviewed(await call(ctx.cmdb.read, path), uid):
            out.status["reviewRequired"] = False
            out.status["review"] = {**current, "reviewedAt": rfc3339(now)}
            out.condition(REVIEWED, ConditionStatus.TRUE, "Merged", f"review merged into {path}")
        return out
    shown = ctx.redactor.change_spec(spec.model_dump(mode="json", by_alias=True, exclude_none=True))
    branch = change_review.review_branch(cluster, namespace, name)
    content = change_review.review_record(
        cluster=cluster, namespace=namespace, name=name, uid=uid, spec=shown, status=status
    )
    message = change_review.review_message(cluster, namespace, name, shown)
    commit = await call(ctx.cmdb.propose, branch, path, content, message)
    found: dict[str, Any] = {"branch": branch, "commit": commit}
    where = f"branch {branch} of the CMDB"
    if ctx.forge is not None:
        title, _, body = message.partition("\n")
        try:
            pull = await asyncio.to_thread(
                ctx.forge.open, branch, ctx.cmdb.branch, title, body.strip() + "\n"
            )
        except ForgeError as exc:
            where += f" (its pull request could not be opened yet: {exc})"
        else:
            found["pullRequest"] = pull.url
            where = f"pull request #{pull.number} ({pull.url})"
    out.status["review"] = found
    out.condition(
        REVIEWED,
        ConditionStatus.FALSE,
        "AwaitingReview",
        f"post-implementation review proposed in {where}; merge it once reviewed",
    )
    return out
