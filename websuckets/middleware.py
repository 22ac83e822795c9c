"""The middleware chain and the built-in middlewares.

A middleware is ``async def middleware(ctx: Context, call_next: CallNext) -> None``. The
chain of every command is built once, when the app starts, in this order (outermost
first)::

    map_errors -> authenticate -> app middlewares -> group middlewares -> validate_payload -> handler

Each built-in is an ordinary middleware: pass your own to ``WebSuckets(...)`` to replace it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence

from pydantic import BaseModel, ValidationError
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from .context import CallNext, Context, Middleware
from .envelope import MISSING, error_event
from .exc import InternalError, PayloadInvalid, Unauthorized, UnexpectedError

__all__ = ["authenticate", "build_chain", "map_errors", "parse_payload", "validate_payload"]

logger = logging.getLogger("websuckets.commands")


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


async def map_errors(ctx: Context, call_next: CallNext) -> None:
    """Turn exceptions into ``error`` events for the client; the connection stays open.

    An `InternalError` is sent with its name and details. Any other
    exception is logged with its traceback and sent as ``internal_error`` with no details.
    """
    try:
        await call_next(ctx)
    except InternalError as error:
        logger.debug("command %r from %s: %s", ctx.event, ctx.socket.id, error.name)
        try:
            text = error_event(error, ctx.event, ctx.id)
        except ValueError as exc:  # details JSON cannot hold, even as text (invalid UTF-8 bytes)
            await _report(ctx, exc)
            return
        await ctx.socket.send(text)
    except ConnectionClosed as exc:
        if ctx.socket.state is not State.OPEN:
            raise  # this client left: nobody to tell
        await _report(ctx, exc)  # another client's socket closed under the handler
    except Exception as exc:
        await _report(ctx, exc)


async def _report(ctx: Context, exc: Exception) -> None:
    ctx.connection.report_unexpected(exc, ctx)
    await ctx.socket.send(error_event(UnexpectedError(), ctx.event, ctx.id))


async def authenticate(ctx: Context, call_next: CallNext) -> None:
    """Refuse a protected command unless its token is a valid, unexpired one.

    A token issued on an earlier connection verifies this one too (a client that
    reconnects keeps its token).
    """
    if ctx.command.protected:
        await _check_token(ctx)
    await call_next(ctx)


async def _check_token(ctx: Context) -> None:
    if ctx.token is None:
        raise Unauthorized("this command needs a token")
    sessions = ctx.connection.sessions
    record = await sessions.find_valid_token(ctx.token)
    if record is None:
        raise Unauthorized("the token is invalid or has expired")
    if ctx.user.id != record.user_id or ctx.user.token != ctx.token:
        sessions.adopt(ctx.user, ctx.token, record)


async def validate_payload(ctx: Context, call_next: CallNext) -> None:
    """Validate ``ctx.payload`` against the handler's model into ``ctx.model``."""
    model = ctx.command.model
    if model is not None:
        ctx.model = parse_payload(model, ctx.payload)
    await call_next(ctx)


def parse_payload(model: type[BaseModel], payload: object) -> BaseModel:
    """Validate a payload, raising `PayloadInvalid` with pydantic's errors.

    The details name each failing field under ``payload`` and never echo the input.
    """
    if payload is MISSING:
        raise PayloadInvalid([{"loc": ["payload"], "msg": "Field required", "type": "missing"}])
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        details = [{"loc": ["payload", *error["loc"]], "msg": error["msg"], "type": error["type"]} for error in errors]
        raise PayloadInvalid(details) from None
