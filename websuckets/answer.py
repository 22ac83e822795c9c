"""Answering a request with ``socket.send``: the command's ``id`` on the first event sent back.

Clients' ``request()`` (`websuckets.client`, websuckets.js) waits for the event that carries
its command's ``id``. ``ctx.reply(...)`` adds it; a handler written as the original
documentation shows, ``await socket.send(ClientEvent(...))``, without a `Context`, cannot. So
for the commands of such handlers, decided when the app starts (`request_chain`), a command
sent with an ``id`` runs with a ``send`` of its own on its socket (an attribute of the
instance, over the class's method) that stamps the ``id`` on the first `ClientEvent` sent and
then removes itself:

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
from .events import ClientEvent, with_id
from .handlers import CallPlan

__all__ = ["FirstEvent", "answer", "request_chain"]


class FirstEvent:
    """A socket's ``send`` while a command with an ``id`` runs: stamps that ``id`` on the first event."""

    __slots__ = ("id", "original", "socket", "task")

    def __init__(self, socket: Any, id: str | int, task: asyncio.Task[Any] | None) -> None:
        self.socket = socket
        self.original: Callable[..., Awaitable[None]] = socket.send
        """The class's ``send``, bound to the socket."""
        self.id = id
        self.task = task
        """The task running the command: only what it sends may be the answer; ``None`` once it has."""

    def send(self, message: Any, text: bool | None = None) -> Awaitable[None]:
        """The socket's ``send``: its coroutine, for the message stamped if it is the answer."""
        if asyncio.current_task() is self.task:
            self.task = None  # the first message only
            self.socket.__dict__.pop("send", None)  # later ones go straight to the class's send
            if isinstance(message, ClientEvent) and message.id is None:
                message = with_id(message, self.id)
        return self.original(message) if text is None else self.original(message, text)


async def answer(ctx: Context, chain: CallNext) -> None:
    """Run ``chain`` for ``ctx``, a command with an ``id``, with the first event on its socket stamped with it."""
    socket = ctx.socket
    assert ctx.id is not None, "only commands with an id are answered"
    stamp = FirstEvent(socket, ctx.id, asyncio.current_task())
    socket.__dict__["send"] = stamp.send
    try:
        await chain(ctx)
    finally:
        stamp.task = None
        socket.__dict__.pop("send", None)


def request_chain(plan: CallPlan, chain: CallNext) -> CallNext:
    """The chain for a command sent with an ``id``: ``chain`` itself when the handler takes `Context`."""
    if plan.takes_context:
        return chain

    def answering(ctx: Context) -> Awaitable[None]:
        return answer(ctx, chain)

    answering.__qualname__ = f"answering({getattr(chain, '__qualname__', chain)!s})"
    return answering
