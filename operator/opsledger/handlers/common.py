"""What every kind's handler shares: the Context from Kopf's memo, spec validation reported
through the one status writer, registration helpers, and the background loops' runner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import kopf
from pydantic import BaseModel, ValidationError

from opsledger.domain.conditions import READY
from opsledger.domain.outcome import Outcome
from opsledger.domain.validation import describe
from opsledger.handlers import status
from opsledger.models.common import ConditionStatus
from opsledger.models.crd import KindInfo
from opsledger.services.context import Context
from opsledger.services.errors import RetryLaterError

SpecT = TypeVar("SpecT", bound=BaseModel)


def context(memo: kopf.Memo) -> Context:
    ctx = memo.get("ctx")
    if not isinstance(ctx, Context):
        raise kopf.PermanentError("operator memo carries no Context: wiring error in main.py")
    return ctx


def parse_spec(model: type[SpecT], spec: Any) -> SpecT:
    """The spec as its model; raises ValidationError with the offending fields."""
    return model.model_validate(dict(spec or {}))


def invalid_spec(exc: ValidationError) -> Outcome:
    """Ready=False InvalidSpec, saying which fields are wrong and what to do."""
    outcome = Outcome()
    outcome.condition(
        READY,
        ConditionStatus.FALSE,
        "InvalidSpec",
        f"{describe(exc)}. Fix the manifest and apply it again.",
    )
    return outcome


def validated_spec(
    *,
    info: KindInfo,
    ctx: Context,
    body: kopf.Body,
    patch: kopf.Patch,
) -> BaseModel | None:
    """Parse the spec through the kind's model; on failure report InvalidSpec and return None.

    The API server's schema catches most mistakes; this catches what a schema cannot (a cron
    expression, a time zone name) and reports it where the user looks: Ready=False and an Event.
    """
    try:
        return parse_spec(info.spec, body.spec)
    except ValidationError as exc:
        status.apply(ctx, info, body, patch, invalid_spec(exc))
        return None


def retry_on(error: Exception | None) -> None:
    """Raise what Kopf retries on for a use case's RetryLaterError (after the outcome is in the
    patch, which Kopf writes either way)."""
    if isinstance(error, RetryLaterError):
        raise kopf.TemporaryError(str(error), delay=error.delay) from error
    if error is not None:
        raise error


def on_spec(info: KindInfo, registry: kopf.OperatorRegistry) -> Callable[[Any], Any]:
    """Register a function for creation, spec updates and operator start-up of a kind."""
    resource = ("opsledger.io", "v1alpha1", info.plural)

    def decorate(fn: Any) -> Any:
        kopf.on.create(*resource, registry=registry, id="create")(fn)
        kopf.on.update(*resource, registry=registry, id="update", field="spec")(fn)
        kopf.on.resume(*resource, registry=registry, id="resume")(fn)
        return fn

    return decorate


def every_idle(
    info: KindInfo, registry: kopf.OperatorRegistry, *, id: str, interval: float
) -> Callable[[Any], Any]:
    """Register a timer `id` on every object of a kind: every `interval` seconds once the
    object has not changed for that long."""
    return kopf.timer(
        "opsledger.io",
        "v1alpha1",
        info.plural,
        registry=registry,
        id=id,
        interval=interval,
        idle=interval,
    )


def forget_on_delete(info: KindInfo, registry: kopf.OperatorRegistry) -> None:
    """Drop an object's metrics when it goes; no finalizer needed for that."""

    @kopf.on.delete(
        "opsledger.io", "v1alpha1", info.plural, registry=registry, optional=True, id="forget"
    )
    def _forget(memo: kopf.Memo, namespace: str | None, name: str | None, **_: Any) -> None:
        context(memo).metrics.forget(info.kind, namespace or "", name or "")


def register_spec_reconciler(
    info: KindInfo,
    registry: kopf.OperatorRegistry,
    derive: Callable[[Any], dict[str, Any]] | None = None,
    then: Callable[[Context, kopf.Body, Any], Outcome] | None = None,
) -> None:
    """Validate the spec on create, update and resume, and report Ready with the outcome.

    `derive` maps the parsed spec to status fields that follow from it alone (a domain call);
    `then` does what follows from a valid spec outside the object, and says how it went.
    """

    @on_spec(info, registry)
    def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
        ctx = context(memo)
        spec = validated_spec(info=info, ctx=ctx, body=body, patch=patch)
        if spec is None:
            return
        outcome = Outcome(status=derive(spec) if derive is not None else {})
        outcome.condition(
            READY, ConditionStatus.TRUE, "Accepted", f"The {info.kind}'s spec is valid."
        )
        if then is not None:
            try:
                outcome.merge(then(ctx, body, spec))
            except RetryLaterError as exc:
                outcome.merge(exc.outcome)
                status.apply(ctx, info, body, patch, outcome)
                raise kopf.TemporaryError(str(exc), delay=exc.delay) from None
        status.apply(ctx, info, body, patch, outcome)

    forget_on_delete(info, registry)


Work = Callable[[], Awaitable[object]]

_log = logging.getLogger("opsledger")


async def every(
    interval: float, what: str, step: Work, *, when: Callable[[], bool] = lambda: True
) -> None:
    """Run `step` every `interval` seconds until cancelled, when `when()` holds (a loop only
    the leading replica runs passes its leadership); a failure is logged, not fatal."""
    while True:
        try:
            if when():
                await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("%s failed; trying again in %ss", what, interval)
        await asyncio.sleep(interval)


def in_background(
    registry: kopf.OperatorRegistry,
    name: str,
    start: Callable[[Context], Coroutine[Any, Any, None] | None],
) -> None:
    """Start the coroutine `start(ctx)` gives (None: nothing to run) with the operator, as the
    activity start-<name>, and cancel it when the operator stops (stop-<name>)."""
    key = f"task:{name}"

    @kopf.on.startup(registry=registry, id=f"start-{name}")
    async def _start(memo: kopf.Memo, **_: Any) -> None:
        work = start(context(memo))
        if work is not None:
            memo[key] = asyncio.create_task(work, name=name)

    @kopf.on.cleanup(registry=registry, id=f"stop-{name}")
    async def _stop(memo: kopf.Memo, **_: Any) -> None:
        task = memo.get(key)
        if isinstance(task, asyncio.Task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
