"""`Streams`: the streams a client started, each with the events that came for it so far. No I/O.

A stream command goes out with a fresh ``id``, like a request; every event that comes back
with that ``id`` is queued for its ``async for`` loop, until ``websuckets end`` or an ``error``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..wire import STREAM_END_EVENT
from .errors import ClientError
from .events import ServerEvent


@dataclass(slots=True)
class Incoming:
    """One stream: what came for it and waits to be read, and whether its frame went out."""

    queue: asyncio.Queue[ServerEvent | ClientError] = field(default_factory=asyncio.Queue)
    sent: bool = False


class Streams:
    """The client's running streams, by ``id``."""

    def __init__(self) -> None:
        self._running: dict[str | int, Incoming] = {}
        self._cancelled: set[str | int] = set()
        """Streams left early and cancelled: what still comes for them, up to their end, is dropped."""

    def open(self, command_id: int) -> Incoming:
        """Start waiting for the events of the stream ``command_id``."""
        incoming = self._running[command_id] = Incoming()
        return incoming

    def get(self, command_id: str | int) -> Incoming | None:
        return self._running.get(command_id)

    def discard(self, command_id: str | int, *, cancelled: bool = False) -> None:
        """Forget a stream; with ``cancelled``, drop its events still on their way until its end."""
        self._running.pop(command_id, None)
        if cancelled:
            self._cancelled.add(command_id)

    def deliver(self, event: ServerEvent) -> bool:
        """Queue ``event`` for the stream it answers, if one runs; ``False`` if none does."""
        answers = event.answers
        incoming = None if answers is None else self._running.get(answers)
        if incoming is None:
            if answers is None or answers not in self._cancelled:
                return False
            if event.is_error or event.event == STREAM_END_EVENT:
                self._cancelled.discard(answers)
            return True  # an item of a stream left early
        if event.is_error or event.event == STREAM_END_EVENT:
            del self._running[answers]  # type: ignore[arg-type]  # not None: found above
        incoming.queue.put_nowait(event)
        return True

    def fail(self, name: str, why: str, *, sent_only: bool = False) -> None:
        """End every stream (or only those whose frame went out) with `ClientError` ``name``."""
        self._cancelled.clear()  # their connection is gone: nothing more comes for them
        for command_id, incoming in list(self._running.items()):
            if incoming.sent or not sent_only:
                del self._running[command_id]
                incoming.queue.put_nowait(ClientError(name, why))


async def next_event(incoming: Incoming, timeout: float | None) -> ServerEvent | None:
    """The stream's next item; ``None`` at its end. Raises `ClientError`: the server's error, or the client's own."""
    try:
        async with asyncio.timeout(timeout):
            event = await incoming.queue.get()
    except TimeoutError:
        raise ClientError("timeout", f"no event of the stream within {timeout} s") from None
    if isinstance(event, ClientError):
        raise event
    if event.is_error:
        raise ClientError.from_payload(event.payload)
    if event.event == STREAM_END_EVENT:
        return None
    return event
