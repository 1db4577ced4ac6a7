"""The one way a record is written to the CMDB, with one failure policy.

A write that cannot reach the remote (or fails otherwise) is not an error for the caller: it
gets CMDBSynced=False saying which record waits and why, and retries on its own schedule (the
record is rendered again from the cluster then, so nothing pending lives only in memory).
"""

from __future__ import annotations

from opsledger.adapters.gitcmdb import CMDBError, Commit, RemoteUnavailableError
from opsledger.domain.outcome import ConditionUpdate
from opsledger.models.common import ConditionStatus
from opsledger.services.context import Context

CMDB_SYNCED = "CMDBSynced"


async def write_record(
    ctx: Context, path: str, text: str, reason: str
) -> tuple[Commit | None, ConditionUpdate]:
    """Write `text` to `path` in the CMDB with commit message `reason`: the commit (None when
    nothing was written) and the CMDBSynced condition that says how it went."""
    if ctx.cmdb is None:
        return None, ConditionUpdate(
            CMDB_SYNCED,
            ConditionStatus.UNKNOWN,
            "NotConfigured",
            "no CMDB remote is configured (OPSLEDGER_CMDB_URL)",
        )
    try:
        commit = await ctx.cmdb.write(path, text, reason)
    except CMDBError as exc:
        why = "RemoteUnavailable" if isinstance(exc, RemoteUnavailableError) else "WriteFailed"
        message = (
            f"{path} is not written yet; will retry every "
            f"{ctx.settings.cmdb_retry_interval:g}s: {exc}"
        )
        return None, ConditionUpdate(CMDB_SYNCED, ConditionStatus.FALSE, why, message)
    return commit, ConditionUpdate(
        CMDB_SYNCED,
        ConditionStatus.TRUE,
        "Committed" if commit.changed else "UpToDate",
        f"{path} at {commit.sha[:12]}",
    )
