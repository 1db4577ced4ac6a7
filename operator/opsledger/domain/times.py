"""RFC 3339 times as Kubernetes writes them: the one parser and the one formatter."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def rfc3339(moment: datetime) -> str:
    """`moment` in UTC to the second, as metav1.Time is written: 2026-12-01T19:44:43Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(moment: datetime | None) -> str | None:
    """rfc3339(moment), or None for no time."""
    return rfc3339(moment) if moment is not None else None


def parse_time(value: object, *, naive: tzinfo | None = UTC) -> datetime | None:
    """A time from status or a record: a datetime, or RFC 3339 text ("Z" or an offset); None
    for nothing or for text that is not a time. A naive time is taken as UTC (as in `naive`;
    None leaves it naive, for a caller that requires a zone)."""
    if isinstance(value, datetime):
        moment = value
    elif not value:
        return None
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=naive)
