"""Delivery to local connections without awaiting any of them: one slow client delays nobody.

Every fan-out (a room, a user's connections, everyone) and every message that arrives from
another process ends here. Real connections go through ``websockets.broadcast``: the message
is encoded once and written to each socket's buffer synchronously. A connection whose write
buffer is already over `SLOW_CONSUMER_BUFFER` is not written to: it is closed with 1013 (try
again later), logged and counted, so that a client that stops reading cannot grow the
server's memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from websockets.asyncio.connection import Connection
from websockets.asyncio.server import broadcast
from websockets.frames import CloseCode
from websockets.protocol import State

__all__ = ["SLOW_CONSUMER_BUFFER", "DeliveryStats", "send_now", "stats"]

logger = logging.getLogger("websuckets.delivery")

SLOW_CONSUMER_BUFFER = 2**20
"""Bytes queued for a client over which a fan-out closes it (1013) instead of queueing more."""


class DeliveryStats:
    """Counters of this process's local deliveries, for logs and metrics."""

    __slots__ = ("delivered", "slow_consumers_closed")

    def __init__(self) -> None:
        self.delivered = 0
        self.slow_consumers_closed = 0


stats = DeliveryStats()
_closing: set[asyncio.Task[None]] = set()


def send_now(sockets: Iterable[Any], message: str | bytes) -> int:
    """Write ``message`` to every open socket in ``sockets`` at once; how many it was written to.

    ``sockets`` are ``ServerConnection`` objects, or test-transport sockets with ``send_nowait``.
    """
    real: list[Connection] = []
    written = 0
    for socket in sockets:
        if isinstance(socket, Connection):
            transport = socket.transport
            if transport is not None and transport.get_write_buffer_size() > SLOW_CONSUMER_BUFFER:
                _close_slow(socket)
                continue
            real.append(socket)
        elif socket.state is State.OPEN:
            socket.send_nowait(message)
            written += 1
    if real:
        broadcast(real, message)
        written += sum(1 for socket in real if socket.protocol.state is State.OPEN)
    stats.delivered += written
    return written


def _close_slow(socket: Connection) -> None:
    if socket.state is not State.OPEN:
        return
    stats.slow_consumers_closed += 1
    logger.warning("closing %s: over %d bytes queued and not read (slow consumer)", socket.id, SLOW_CONSUMER_BUFFER)
    task = asyncio.get_running_loop().create_task(socket.close(CloseCode.TRY_AGAIN_LATER, "too slow"))
    _closing.add(task)
    task.add_done_callback(_closing.discard)
