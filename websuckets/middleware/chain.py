"""Composing a command's chain: its middlewares around the step that calls its handler.

A middleware is ``async def middleware(ctx: Context, call_next: CallNext) -> None``.
`build_chain` composes them once, when the app starts; `endpoint` is the last step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from ..context import CallNext, Context, Middleware
from ..handlers import CallPlan
from .validation import parse_payload


def build_chain(middlewares: Sequence[Middleware], endpoint: CallNext) -> CallNext:
    """Compose ``middlewares`` around ``endpoint``: the first one listed runs first."""
    chain = endpoint
    for middleware in reversed(middlewares):
        chain = _link(middleware, chain)
    return chain


def _link(middleware: Middleware, call_next: CallNext) -> CallNext:
    def step(ctx: Context) -> Awaitable[None]:
        return middleware(ctx, call_next)  # the middleware's own coroutine: no frame of ours per step

    step.__qualname__ = f"chain({getattr(middleware, '__qualname__', middleware)!s})"
    return step


def endpoint(plan: CallPlan, *, validate: bool = False) -> Callable[[Context], Awaitable[None]]:
    """The last step of a command's chain: call the handler, in a REQUEST scope only if it injects.

    With ``validate``, the step first validates the payload into ``ctx.model``, as the
    built-in `validate_payload` middleware would: the app fuses the two when that
    middleware is in place, saving a step per message.
    """
    model = plan.model if validate else None
    # The steps below are plain functions returning the handler's coroutine: a payload that
    # fails validation raises where the previous step calls them, inside its ``await``.
    if plan.needs_container:

        def call_in_scope(ctx: Context) -> Awaitable[None]:
            if model is not None:
                ctx.model = parse_payload(model, ctx.payload)
            container = ctx.connection.container
            assert container is not None, "checked when the app started"
            return plan.call_in_scope(ctx, container, {Context: ctx})

        return call_in_scope

    invoke = plan.invoke
    if model is None:
        return invoke  # the handler's own coroutine is the step

    def validate_and_call(ctx: Context) -> Awaitable[None]:
        ctx.model = parse_payload(model, ctx.payload)
        return invoke(ctx)

    return validate_and_call
