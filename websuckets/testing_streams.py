"""`TestStream`: a stream that a `websuckets.testing.TestConnection` started, to iterate and cancel.

::

    stream = await alice.stream("search", {"text": "ws"})
    hits = [item.payload async for item in stream]       # until "websuckets end"
    assert stream.end is not None and stream.end.payload["items"] == len(hits)

``await stream.cancel()`` sends ``websuckets cancel`` and returns the end event; an ``error``
event for the stream raises `websuckets.testing.ErrorReply` from the loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Self

from .wire import CANCEL_EVENT, STREAM_END_EVENT


class TestStream:
    """The items of one stream, in order, then its end; frames of anything else are left for ``receive``."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        id: str | int,
        next_answer: Callable[[str | int, float | None], Awaitable[Any]],
        send: Callable[..., Awaitable[None]],
    ) -> None:
        self.id = id
        """The stream's command ``id``."""
        self.end: Any = None
        """The ``websuckets end`` event (a `websuckets.testing.Received`), once it came."""
        self.items: list[Any] = []
        """The items received so far (`websuckets.testing.Received`), oldest first."""
        self._next_answer = next_answer
        self._send = send

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        """The next item; stops at the stream's end; raises `ErrorReply` for its ``error`` event."""
        return await self.next()

    async def next(self, timeout: float | None = None) -> Any:
        """The next item (a `websuckets.testing.Received`), waiting at most ``timeout`` seconds.

        ``None`` waits as long as the `TestClient`'s timeout.
        """
        if self.end is not None:
            raise StopAsyncIteration
        received = await self._next_answer(self.id, timeout)
        if received.event == STREAM_END_EVENT:
            self.end = received
            raise StopAsyncIteration
        self.items.append(received)
        return received

    async def collect(self, timeout: float | None = None) -> list[Any]:
        """Every item until the end (those received already included)."""
        while self.end is None:
            try:
                await self.next(timeout)
            except StopAsyncIteration:
                break
        return self.items

    async def cancel(self, timeout: float | None = None) -> Any:
        """Send ``websuckets cancel`` for this stream; the end event (items that came first are kept in `items`)."""
        if self.end is None:
            await self._send(CANCEL_EVENT, id=self.id)
        await self.collect(timeout)
        return self.end
