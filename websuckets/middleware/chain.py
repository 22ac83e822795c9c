"""Composing a command's chain: its middlewares around the step that calls its handler.

A middleware is ``async def middleware(ctx: Context, call_next: CallNext) -> None``.
`build_chain` composes them once, when the app starts; `endpoint` is the last step.

Two optional attributes of a middleware (a function's attribute, or a class attribute of a
middleware object) let the app build shorter chains; the built-ins carry them, and a middleware
of your own may too:

- ``applies_to(command) -> bool``: the app leaves the middleware out of the chain of each
  command for which it returns ``False`` (`websuckets.middleware.authenticate` applies to
  protected commands only, `websuckets.middleware.CommandTimeouts` to commands with a limit);
- ``fuses_into_endpoint``, on the validation middleware: a function ``parse(model, payload)``
  returning the validated model or raising `websuckets.exc.PayloadInvalid`. The middleware
  declares that all it does is ``ctx.model = parse(ctx.command.model, ctx.payload)`` (when the
  command has a model), so the app runs ``parse`` inside the handler's step and leaves the
  middleware out: a step less per message. `websuckets.middleware.validate_payload` carries
  `websuckets.middleware.parse_payload`;
- ``answers_errors_with``, on the error middleware: a function ``answer(ctx, exc)``. The
  middleware declares that it is ``try: await call_next(ctx)`` / ``except Exception as exc:
  await answer(ctx, exc)``, so that an instrument may do its own work in the same step
  (`websuckets.metrics.Metrics` does). `websuckets.middleware.map_errors` carries
  `websuckets.middleware.errors.answer_error`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ..context import CallNext, CommandInfo, Context, Middleware
from ..handlers import CallPlan
from .validation import parse_payload

if TYPE_CHECKING:  # pydantic's BaseModel is imported by the apps that define models (see websuckets.handlers)
    from pydantic import BaseModel

PayloadParser = Callable[[type["BaseModel"], object], "BaseModel"]
"""``parse(model, payload)``: the payload validated into ``model``, or `websuckets.exc.PayloadInvalid`."""

AnswerError = Callable[[Context, Exception], Awaitable[None]]
"""``answer(ctx, exc)``: what an error middleware does with an exception its chain raised."""

M = TypeVar("M")


def mark(
    *,
    applies_to: Callable[[CommandInfo], bool] | None = None,
    fuses_into_endpoint: PayloadParser | None = None,
    answers_errors_with: AnswerError | None = None,
) -> Callable[[M], M]:
    """A decorator setting a middleware function's ``applies_to``, ``fuses_into_endpoint`` or
    ``answers_errors_with`` (see above); those left ``None`` are not set."""
    attributes = {
        "applies_to": applies_to,
        "fuses_into_endpoint": fuses_into_endpoint,
        "answers_errors_with": answers_errors_with,
    }

    def decorate(middleware: M) -> M:
        for name, value in attributes.items():
            if value is not None:
                setattr(middleware, name, value)
        return middleware

    return decorate


def applies_to(middleware: Middleware, command: CommandInfo) -> bool:
    """Whether ``middleware`` goes in ``command``'s chain: unless its ``applies_to`` says it does not."""
    applies: Callable[[CommandInfo], bool] | None = getattr(middleware, "applies_to", None)
    return applies is None or applies(command)


def fused_parser(middleware: Middleware) -> PayloadParser | None:
    """The ``parse`` that the handler's step may run in place of the validation ``middleware``, if it declares one."""
    parse: PayloadParser | None = getattr(middleware, "fuses_into_endpoint", None)
    return parse


def error_answer(middleware: Middleware) -> AnswerError | None:
    """The ``answer`` that the error ``middleware`` declares it is made of, if it does."""
    answer: AnswerError | None = getattr(middleware, "answers_errors_with", None)
    return answer


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


def endpoint(
    plan: CallPlan, *, validate: bool = False, parse: PayloadParser = parse_payload
) -> Callable[[Context], Awaitable[None]]:
    """The last step of a command's chain: call the handler, in a REQUEST scope only if it injects.

    With ``validate``, the step first validates the payload into ``ctx.model`` with ``parse``,
    as a validation middleware that ``fuses_into_endpoint`` would: the app fuses the two when
    such a middleware is in place (the built-in `validate_payload` is one), saving a step per message.
    """
    model = plan.model if validate else None
    # The steps below are plain functions returning the handler's coroutine: a payload that
    # fails validation raises where the previous step calls them, inside its ``await``.
    if plan.needs_container:

        def call_in_scope(ctx: Context) -> Awaitable[None]:
            if model is not None:
                ctx.model = parse(model, ctx.payload)
            container = ctx.connection.container
            assert container is not None, "checked when the app started"
            return plan.call_in_scope(ctx, container, {Context: ctx})

        return call_in_scope

    invoke = plan.invoke
    if model is None:
        return invoke  # the handler's own coroutine is the step

    def validate_and_call(ctx: Context) -> Awaitable[None]:
        ctx.model = parse(model, ctx.payload)
        return invoke(ctx)

    return validate_and_call
