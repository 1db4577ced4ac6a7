"""The monthly service review: started with the operator, looked at hourly (the work is in
services/report.py)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import kopf

from opsledger.handlers.common import every, in_background
from opsledger.services import report
from opsledger.services.context import Context


def register(registry: kopf.OperatorRegistry) -> None:
    """Once a month is over, its review is committed (looked at hourly, and at each start)."""

    def start(ctx: Context) -> Coroutine[Any, Any, None] | None:
        if not (ctx.settings.monthly_review and ctx.cmdb is not None and ctx.kube is not None):
            return None
        return every(
            3600.0,
            "the monthly service review",
            lambda: report.review_last_month(ctx),
            when=lambda: ctx.leading,
        )

    in_background(registry, "monthly-review", start)
