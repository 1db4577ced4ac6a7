"""What a use case raises when its work must be tried again later, with what it found so far."""

from __future__ import annotations

from opsledger.domain.outcome import Outcome


class RetryLaterError(Exception):
    """Not done yet: report `outcome` now and try again after `delay` seconds."""

    def __init__(self, message: str, *, delay: float, outcome: Outcome | None = None) -> None:
        super().__init__(message)
        self.delay = delay
        self.outcome = outcome or Outcome()


class UnavailableError(RuntimeError):
    """An outside service (Prometheus, the CMDB remote, the forge) did not answer; the message
    says which and why."""


class CMDBUnavailableError(UnavailableError):
    """The CMDB store could not fetch, read or push what was asked; the message is the store's."""
