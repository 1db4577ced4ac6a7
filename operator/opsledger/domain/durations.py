"""Durations as people write them in manifests: Go's notation ("15m", "1h30m", "4h")."""

from __future__ import annotations

import re
from datetime import timedelta

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def go_duration(text: str) -> timedelta:
    """Go's time.ParseDuration for the units people use ("15m", "1h30m", "4h")."""
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a Go duration such as 15m, 4h or 1h30m")
    return timedelta(seconds=sum(float(n) * _GO_UNITS[u] for n, u in parts))


def format_duration(delta: timedelta) -> str:
    """A duration as Go prints it, to the second: 1h2m3s, 15m0s, 42s."""
    total = max(0, int(delta.total_seconds()))
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"
