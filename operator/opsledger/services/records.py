"""The one way the use cases write to the CMDB, with one failure policy.

`write_record` never raises for a store that fails: it hands back the commit (None when nothing
was written), the CMDBSynced condition that says how it went, and the store's error, so each
caller reports the failure its way (a ConfigurationItem sets the condition and retries on its
own schedule, an Incident retries its handler, a Change says it is retrying, the monthly review
fails) and the record is rendered again from the cluster on the next attempt, so nothing
pending lives only in memory. The store's other calls a use case makes (a fetch, a read of the
protected branch's history, a proposal push) go through `call`, which turns the store's failure
into CMDBUnavailableError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import NamedTuple, ParamSpec, TypeVar

from opsledger.adapters.gitcmdb import CMDBError, Commit, RemoteUnavailableError
from opsledger.domain.conditions import CMDB_SYNCED
from opsledger.domain.outcome import ConditionUpdate
from opsledger.models.common import ConditionStatus
from opsledger.services.context import Context
from opsledger.services.errors import CMDBUnavailableError

P = ParamSpec("P")
T = TypeVar("T")


class Written(NamedTuple):
    """How one write went: the commit (None when nothing was written), the CMDBSynced
    condition saying so, and the store's error when it failed."""

    commit: Commit | None
    synced: ConditionUpdate
    error: Exception | None = None


async def write_record(ctx: Context, path: str, text: str, reason: str) -> Written:
    """Write `text` to `path` in the CMDB with commit message `reason`."""
    if ctx.cmdb is None:
        return Written(
            None,
            ConditionUpdate(
                CMDB_SYNCED,
                ConditionStatus.UNKNOWN,
                "NotConfigured",
                "no CMDB remote is configured (OPSLEDGER_CMDB_URL)",
            ),
        )
    try:
        commit = await ctx.cmdb.write(path, text, reason)
    except CMDBError as exc:
        why = "RemoteUnavailable" if isinstance(exc, RemoteUnavailableError) else "WriteFailed"
        message = (
            f"{path} is not written yet; will retry every "
            f"{ctx.settings.cmdb_retry_interval:g}s: {exc}"
        )
        return Written(None, ConditionUpdate(CMDB_SYNCED, ConditionStatus.FALSE, why, message), exc)
    return Written(
        commit,
        ConditionUpdate(
            CMDB_SYNCED,
            ConditionStatus.TRUE,
            "Committed" if commit.changed else "UpToDate",
            f"{path} at {commit.sha[:12]}",
        ),
    )


async def call(action: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """One of the store's blocking calls (a fetch, a read, a proposal push), in a thread;
    CMDBUnavailableError, with the store's message, when the store cannot do it."""
    try:
        return await asyncio.to_thread(action, *args, **kwargs)
    except CMDBError as exc:
        raise CMDBUnavailableError(str(exc)) from exc
