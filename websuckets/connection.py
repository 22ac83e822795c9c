"""``GuardedConnection``: the server side of one websocket, with bounded waits.

A ``websockets`` ``ServerConnection`` with two changes, so that no peer can make the server
wait on it for long:

- keepalive: when a ping gets no pong within ``ping_timeout``, the peer is dead; the TCP
  connection is aborted at once (no close handshake that a dead peer would never answer), so
  the client leaves ``Session.online`` ``ping_interval + ping_timeout`` seconds after it died
  at most, not a ``close_timeout`` later;
- slow consumers: a ``send`` that waits more than ``send_timeout`` seconds for a client to
  read (its write buffer full) closes the connection with 1013 (try again later) and raises
  ``ConnectionClosedError``. Only a send that must wait pays for the timer;
- reads of at most `READ_SIZE` bytes: ``websockets`` parses every frame of one read in one
  callback, and asyncio reads up to 256 KiB at once, about 3,000 small frames and 9 ms of
  parsing during which no other connection runs.

And one addition: a shutdown can find the connections that have not sent their opening request
yet (`drop_waiting_handshakes`), so that a TCP connection that never sends one (a browser's
speculative preconnect, a probe that only connects) does not hold the shutdown for
``open_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import ClassVar

from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.protocol import State

__all__ = ["READ_SIZE", "GuardedConnection", "SendTimeout", "drop_waiting_handshakes", "guarded_connection"]

logger = logging.getLogger("websuckets.connection")


READ_SIZE: int | None = 16 * 1024
"""The most bytes read from a socket at once (asyncio's default event loop, without TLS).

Small messages arrive one a read anyway; a client pipelining them costs at most about 0.7 ms
of parsing per read instead of 9 ms. ``None`` keeps asyncio's 256 KiB. uvloop and TLS
transports read 256 KiB at once whatever this says.
"""


class SendTimeout(Exception):
    """A client did not read its messages for ``send_timeout`` seconds."""


class GuardedConnection(ServerConnection):
    """A ``ServerConnection`` whose keepalive drops dead peers and whose sends time out."""

    send_timeout: ClassVar[float | None] = None
    """Seconds a send may wait for the client to read, or ``None`` to wait forever."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        _opening.add(self)
        if READ_SIZE is not None and isinstance(getattr(transport, "max_size", None), int):
            transport.max_size = READ_SIZE  # type: ignore[attr-defined]  # asyncio's selector transport

    async def drain(self) -> None:
        """Wait until the write buffer is below its limit, at most ``send_timeout`` seconds."""
        if self.send_timeout is None or not self.paused:
            await super().drain()
            return
        try:
            async with asyncio.timeout(self.send_timeout):
                await super().drain()
        except TimeoutError:
            logger.warning("client %s read nothing for %.1f s: closing with 1013", self.id, self.send_timeout)
            self.protocol.fail(CloseCode.TRY_AGAIN_LATER, "send timeout")
            raise SendTimeout(self.send_timeout) from None  # send_context aborts the transport, raises ConnectionClosed

    async def keepalive(self) -> None:
        """Ping every ``ping_interval`` seconds; abort the connection when a pong is ``ping_timeout`` late."""
        assert self.ping_interval is not None
        latency = 0.0
        try:
            while True:
                await asyncio.sleep(max(self.ping_interval - latency, 0.0))
                pong = await self.ping()
                if self.ping_timeout is None:
                    continue
                try:
                    async with asyncio.timeout(self.ping_timeout):
                        latency = await pong
                except TimeoutError:
                    logger.info("client %s did not answer a ping within %.1f s: dropped", self.id, self.ping_timeout)
                    self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                    self.transport.abort()  # a dead peer never answers a close frame: do not wait for one
                    return
        except ConnectionClosed:
            pass
        except Exception:
            logger.error("keepalive ping failed", exc_info=True)


def guarded_connection(send_timeout: float | None) -> type[GuardedConnection]:
    """A `GuardedConnection` class with this ``send_timeout``, for ``serve(create_connection=...)``."""
    return type("GuardedConnection", (GuardedConnection,), {"send_timeout": send_timeout})


_opening: weakref.WeakSet[GuardedConnection] = weakref.WeakSet()
"""Connections that may not have sent their opening request yet (the others leave when collected)."""


def drop_waiting_handshakes(server: Server) -> None:
    """Close the connections of ``server`` that have not sent their opening request: nothing of theirs is in flight.

    The server has stopped listening; websockets would refuse their request with a 503 anyway,
    and one that never comes would hold the shutdown until ``open_timeout``.
    """
    for connection in list(_opening):
        if connection.server is server and connection.request is None and connection.state is State.CONNECTING:
            _opening.discard(connection)
            connection.transport.close()
