"""Where received events go: `Listeners` registered with ``on``, and the `Inbox` that ``async for`` reads."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from .events import ServerEvent

logger = logging.getLogger("websuckets.client")

Callback = Callable[[ServerEvent], Awaitable[None] | None]
"""A listener: ``callback(event)``, a function or a coroutine function."""


class Listeners:
    """Callbacks by event name, called in the order they were added.

    A coroutine function's call runs as a task of its own, so that a slow listener delays
    neither the others nor the reading of the connection. A listener that raises is logged
    (``websuckets.client``, ERROR) and the others still run.
    """

    def __init__(self) -> None:
        self._by_event: dict[str, dict[Callback, None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def on(self, event: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback`` with every event named ``event``; returns a function that unsubscribes it."""
        self._by_event.setdefault(event, {})[callback] = None
        return lambda: self.off(event, callback)

    def off(self, event: str, callback: Callback) -> None:
        """Stop calling ``callback`` for ``event`` (nothing happens if it was not listening)."""
        self._by_event.get(event, {}).pop(callback, None)

    def emit(self, event: ServerEvent) -> None:
        """Call every listener of ``event.event``."""
        for callback in list(self._by_event.get(event.event, ())):
            try:
                result = callback(event)
            except Exception:
                logger.exception("a listener of %r failed", event.event)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(_run(result, event.event))
                self._tasks.add(task)  # keep a reference until it is done
                task.add_done_callback(self._tasks.discard)


async def _run(awaitable: Awaitable[None], event: str) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("a listener of %r failed", event)


class Inbox:
    """The events that ``async for event in client`` yields, oldest first, until the client closes.

    It holds at most ``max_size`` events: past that, the oldest is dropped and a warning
    logged (once, then at DEBUG level), so that a client read only with listeners does not
    grow without bound. ``max_size=0`` keeps nothing.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.dropped = 0
        """Events dropped so far because nobody read them in time."""
        self._events: deque[ServerEvent] = deque()
        self._arrived = asyncio.Event()
        self._closed = False

    def put(self, event: ServerEvent) -> None:
        """Keep ``event`` for the next reader (nothing after `close`)."""
        if self._closed:
            return
        self._events.append(event)
        if len(self._events) > self.max_size:
            self._events.popleft()
            self.dropped += 1
            level = logging.WARNING if self.dropped == 1 else logging.DEBUG
            logger.log(level, "%d events dropped: nobody iterates over the client (see max_buffer)", self.dropped)
        self._arrived.set()

    def close(self) -> None:
        """Readers get what is left, then the end of the iteration."""
        self._closed = True
        self._arrived.set()

    async def get(self) -> ServerEvent:
        """The oldest event; `StopAsyncIteration` once closed and empty."""
        while not self._events:
            if self._closed:
                raise StopAsyncIteration
            self._arrived.clear()
            await self._arrived.wait()
        return self._events.popleft()
