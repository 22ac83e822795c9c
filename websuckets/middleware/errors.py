"""``map_errors``: the outermost middleware, turning exceptions into ``error`` events."""

from __future__ import annotations

import logging

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from ..context import CallNext, Context
from ..envelope import error_event
from ..exc import InternalError, UnexpectedError

logger = logging.getLogger("websuckets.commands")


async def map_errors(ctx: Context, call_next: CallNext) -> None:
    """Turn exceptions into ``error`` events for the client; the connection stays open.

    An `InternalError` is sent with its name and details. Any other
    exception is logged with its traceback and sent as ``internal_error`` with no details.
    It ``answers_errors_with`` `answer_error` (see `websuckets.middleware.chain`).
    """
    try:
        await call_next(ctx)
    except Exception as exc:
        await answer_error(ctx, exc)


def client_error(exc: BaseException) -> InternalError:
    """The error a client is sent for ``exc``, raised by its command: the mapping every part of websuckets uses.

    An `InternalError` is its own answer; anything else is `UnexpectedError` (``internal_error``,
    no details: the traceback goes to the log).
    """
    return exc if isinstance(exc, InternalError) else UnexpectedError()


async def answer_error(ctx: Context, exc: Exception) -> None:
    """What `map_errors` does with an exception: the ``error`` event for the client, a log line.

    Re-raises ``ConnectionClosed`` when it is this client that left: nobody to tell.
    """
    if isinstance(exc, InternalError):
        logger.debug("command %r from %s: %s", ctx.event, ctx.socket.id, exc.name)
        try:
            text = error_event(exc, ctx.event, ctx.id)
        except ValueError as unencodable:  # details JSON cannot hold, even as text (invalid UTF-8 bytes)
            await _report(ctx, unencodable)
            return
        await ctx.socket.send(text)
    elif isinstance(exc, ConnectionClosed):
        if ctx.socket.state is not State.OPEN:
            raise exc  # this client left: nobody to tell
        await _report(ctx, exc)  # another client's socket closed under the handler
    else:
        await _report(ctx, exc)


map_errors.answers_errors_with = answer_error  # type: ignore[attr-defined]  # see websuckets.middleware.chain


async def _report(ctx: Context, exc: Exception) -> None:
    ctx.connection.report_unexpected(exc, ctx)
    await ctx.socket.send(error_event(client_error(exc), ctx.event, ctx.id))
