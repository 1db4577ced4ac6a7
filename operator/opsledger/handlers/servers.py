"""The servers' lifetime under Kopf: each configured server starts with the operator (a startup
handler) and stops with it (a cleanup handler).

The servers themselves are in `servers/`; main.py hands their `serve` functions in. A `serve`
pushes what stops it onto the exit stack as it goes, raises when the start may be tried again,
and returns the reason when it would not help (the operator then stops, saying why).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from opsledger.handlers.common import context, every, in_background
from opsledger.models.settings import Settings
from opsledger.services import guard_scope
from opsledger.services.context import Context

GUARD_SCOPE_INTERVAL = 5.0  # seconds between looks at where the protected objects are

Serve = Callable[[Context, contextlib.AsyncExitStack], Awaitable[str | None]]


def register(
    registry: kopf.OperatorRegistry, settings: Settings, *, webhook: Serve, receiver: Serve
) -> None:
    """Serve the admission webhook and the Alertmanager receiver, each when its port is set."""
    if settings.webhook_port is not None:
        _lifetime(registry, "admission-webhook", webhook)
        in_background(
            registry,
            "guard-scope",
            lambda ctx: every(
                GUARD_SCOPE_INTERVAL,
                "keeping the guard's namespaces",
                lambda: guard_scope.refresh(ctx),
                when=lambda: ctx.leading,
            ),
        )
    if settings.receiver_port is not None:
        _lifetime(registry, "alertmanager-receiver", receiver)


def _lifetime(registry: kopf.OperatorRegistry, name: str, serve: Serve) -> None:
    stack = contextlib.AsyncExitStack()

    @kopf.on.startup(registry=registry, id=name)
    async def start(memo: kopf.Memo, **_: Any) -> None:
        refusal = await serve(context(memo), stack)
        if refusal is not None:
            raise kopf.PermanentError(refusal)

    @kopf.on.cleanup(registry=registry, id=f"{name}-stop")
    async def stop(**_: Any) -> None:
        await stack.aclose()
