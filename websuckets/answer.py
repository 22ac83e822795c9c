"""Answering a request with ``socket.send``: the command's ``id`` on the first event sent back.

Clients' ``request()`` (`websuckets.client`, websuckets.js) waits for the event that carries
its command's ``id``. ``ctx.reply(...)`` adds it; a handler written as the original
documentation shows, ``await socket.send(ClientEvent(...))``, without a `Context`, cannot. So
for the commands of such handlers, decided when the app starts (`request_chain`), a command
sent with an ``id`` runs with a `websuckets.events.PendingAnswer` on its connection, and the
connection's ``send`` stamps the ``id`` on the first `ClientEvent` sent (`websuckets.events.answered`):

- only the first message that the command's own task sends to its own socket counts. A
  `ClientEvent` without an ``id`` gets the command's; anything else (an event that has an
  ``id`` already, an ``error`` event, text or bytes built by hand) goes out as it is; nothing
  after it is stamped;
- messages that other tasks send to the socket meanwhile (other clients' commands, tasks the
  handler started), fan-outs (``Session.broadcast``, which write past ``send``), and messages
  sent after the command's chain returned are never stamped.

A handler that takes `Context` (directly or as ``FromDishka[Context]``) answers with
``ctx.reply`` and is left alone: a handler that pushes an event before its reply keeps doing
so unchanged. A command without an ``id`` never comes here: the dispatcher picks the chain
with one check of ``id``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .context import CallNext, Context
from .events import PendingAnswer
from .handlers import CallPlan


async def answer(ctx: Context, chain: CallNext) -> None:
    """Run ``chain`` for ``ctx``, a command with an ``id``, with the first event on its socket stamped with it."""
    socket: Any = ctx.socket  # GuardedConnection.send stamps the answer; other connections ignore it
    assert ctx.id is not None, "only commands with an id are answered"
    socket.pending_answer = PendingAnswer(ctx.id, ctx.connection.task or asyncio.current_task())
    try:
        await chain(ctx)
    finally:
        socket.pending_answer = None


def request_chain(plan: CallPlan, chain: CallNext) -> CallNext:
    """The chain for a command sent with an ``id``: ``chain`` itself when the handler takes `Context`."""
    if plan.takes_context:
        return chain

    def answering(ctx: Context) -> Awaitable[None]:
        return answer(ctx, chain)

    answering.__qualname__ = f"answering({getattr(chain, '__qualname__', chain)!s})"
    return answering


def answering_errors(rest: CallNext, answer_error: Callable[[Context, Exception], Awaitable[None]]) -> CallNext:
    """`answer` around an error middleware that ``answers_errors_with`` ``answer_error``, in one step.

    The same as `request_chain`'s step around ``try: await rest(ctx)`` / ``except Exception as exc:
    await answer_error(ctx, exc)`` (see `websuckets.middleware.chain`): the error event is sent while
    the answer is pending, as it was, with a coroutine less per command.
    """

    async def answering(ctx: Context) -> None:
        socket: Any = ctx.socket
        assert ctx.id is not None, "only commands with an id are answered"
        socket.pending_answer = PendingAnswer(ctx.id, ctx.connection.task or asyncio.current_task())
        try:
            await rest(ctx)
        except Exception as exc:
            await answer_error(ctx, exc)
        finally:
            socket.pending_answer = None

    answering.__qualname__ = f"answering_errors({getattr(rest, '__qualname__', rest)!s})"
    return answering
