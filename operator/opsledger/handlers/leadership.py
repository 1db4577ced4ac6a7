"""Which replica leads: judged every few seconds from Kopf's peering (services/leadership.py);
the loops and change execution run only in the leader."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import kopf

from opsledger.handlers.common import every, in_background
from opsledger.services import leadership
from opsledger.services.context import Context

INTERVAL = 2.0  # seconds between looks at the peering


def register(registry: kopf.OperatorRegistry) -> None:
    def start(ctx: Context) -> Coroutine[Any, Any, None]:
        return every(INTERVAL, "judging leadership", lambda: leadership.follow(ctx))

    in_background(registry, "leadership", start)
