"""What the Git CMDB store takes and gives back, and how it fails: git-free, so callers and
the store's helpers need not import GitPython.
"""

from __future__ import annotations

from dataclasses import dataclass


class CMDBError(Exception):
    """Writing to the CMDB repository failed."""


class RemoteUnavailableError(CMDBError):
    """The remote could not be reached or refused us; the message says why, in git's words."""


@dataclass(frozen=True)
class Write:
    """One record to write, and why (for the commit message)."""

    path: str
    content: str
    reason: str


@dataclass(frozen=True)
class Commit:
    """Where a record now lives in the remote."""

    path: str
    sha: str
    changed: bool  # False when the record already had this content
