"""``GuardedConnection``: the server side of one websocket, with bounded waits.

A ``websockets`` ``ServerConnection`` with two changes, so that no peer can make the server
wait on it for long:

- keepalive: when a ping gets no pong within ``ping_timeout``, the peer is dead; the TCP
  connection is aborted at once (no close handshake that a dead peer would never answer), so
  the client leaves ``Session.online`` ``ping_interval + ping_timeout`` seconds after it died
  at most (and `websuckets.keepalive.RESOLUTION`), not a ``close_timeout`` later. The pings come
  from timers the loop's connections share (`websuckets.keepalive`), not a task each;
- slow consumers: a ``send`` that waits more than ``send_timeout`` seconds for a client to
  read (its write buffer full) closes the connection with 1013 (try again later) and raises
  ``ConnectionClosedError``. Only a send that must wait pays for the timer;
- parsing in slices of `READ_SIZE` bytes: ``websockets`` parses every frame of the data it
  is given in one callback, and a socket read brings up to 256 KiB, about 3,000 small frames
  and 9 ms of parsing during which no other connection runs. asyncio's own transport is told
  to read no more than that; from the others (uvloop, TLS), a larger read is handed to
  ``websockets`` a slice per turn of the event loop, in order, before anything read later.

And two additions: a shutdown can find the connections that have not sent their opening request
yet (`drop_waiting_handshakes`), so that a TCP connection that never sends one (a browser's
speculative preconnect, a probe that only connects) does not hold the shutdown for
``open_timeout``; and the server closes a connection from inside its own command or hook with
`close_draining`, which reads and drops what the client still sends so that the client's close
frame is read at once, not ``close_timeout`` (10 s) later.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import weakref
from collections.abc import Coroutine
from typing import Any, ClassVar

from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Opcode
from websockets.protocol import State

from .delivery import server_frame
from .events import PendingAnswer, answered
from .keepalive import keepalive
from .negotiation import WireFormat

__all__ = [
    "READ_SIZE",
    "GuardedConnection",
    "SendTimeout",
    "close_draining",
    "drop_waiting_handshakes",
    "guarded_connection",
]

logger = logging.getLogger("websuckets.connection")


READ_SIZE: int | None = 16 * 1024
"""The most bytes of a connection that ``websockets`` parses in one turn of the event loop.

Small messages arrive one a read anyway; a client pipelining them costs others at most about
0.7 ms of parsing at a time instead of 9 ms. ``None`` parses whatever a read brings (256 KiB
at most).
"""


class SendTimeout(Exception):
    """A client did not read its messages for ``send_timeout`` seconds."""


class GuardedConnection(ServerConnection):
    """A ``ServerConnection`` whose keepalive drops dead peers and whose sends time out."""

    send_timeout: ClassVar[float | None] = None
    """Seconds a send may wait for the client to read, or ``None`` to wait forever."""

    codec: WireFormat | None = None
    """The connection's wire format when it is not JSON, chosen at the handshake (`websuckets.negotiation`)."""

    pending_answer: PendingAnswer | None = None
    """While a command with an ``id`` whose handler answers with ``send`` runs: see `websuckets.answer`."""

    _unparsed: collections.deque[memoryview] | None = None
    """What was read and not given to ``websockets`` yet, oldest first; ``None`` when nothing waits."""

    keepalive_slot: int = 0
    keepalive_pong: asyncio.Future[float] | None = None
    keepalive_sent: float = 0.0
    """The keepalive's state of this connection (see `websuckets.keepalive.Pinged`)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        _opening.add(self)
        if READ_SIZE is not None and isinstance(getattr(transport, "max_size", None), int):
            transport.max_size = READ_SIZE  # type: ignore[attr-defined]  # asyncio's selector transport
        else:  # uvloop, TLS: slices of what they read, when websockets wants more (see _resume_reading)
            self.recv_messages.resume = self._resume_reading

    def send(self, message: Any, *, text: bool | None = None) -> Coroutine[Any, Any, None]:
        """``ServerConnection.send``, the first event of a pending answer stamped with its command's ``id``.

        A text message on an open connection takes `_send_text`: the same frame, without
        ``websockets``' generic path (an async context manager per message).
        """
        if self.codec is not None:
            data = self._encoded(self.codec, message)
            if type(data) is bytes and text is not True and self.send_in_progress is None:
                return self._send_binary(data)
            return super().send(data, text=text)
        if self.pending_answer is not None:
            message, self.pending_answer = answered(self.pending_answer, message)
        if isinstance(message, str) and text is not False and self.send_in_progress is None:
            return self._send_text(message)
        return super().send(message, text=text)

    def _encoded(self, codec: WireFormat, message: Any) -> Any:
        """``message`` in the connection's format; a pending answer's first event gets its command's ``id``."""
        pending = self.pending_answer
        if pending is not None:
            stamped, self.pending_answer = answered(pending, message)
            if stamped is not message:  # the answer: packed from its parts with the id, not from JSON text
                return codec.encode_event(message.event, message.payload, pending.id)
        return codec.encode(message)

    async def _send_text(self, message: str) -> None:
        """What ``websockets`` does to send a ``str`` on an open connection, in one coroutine.

        ``Connection.send`` enters ``send_context()`` (an ``asynccontextmanager``) around
        ``protocol.send_text``, then writes and drains; that manager costs more than the frame.
        Here the common case runs inline, the frame built by `websuckets.delivery.server_frame`
        and queued where ``protocol.send_text`` queues it (so ``data_to_send`` still sees every
        byte; with an extension or websockets' debug logging on, ``protocol.send_text`` itself).
        Anything else (the connection not open any more, a fragmented send started meanwhile,
        text that UTF-8 cannot encode) goes to ``Connection.send``, which handles it as it always
        did. An error while writing or draining ends the connection as ``send_context`` does:
        abort, wait, ``ConnectionClosed``.
        """
        protocol = self.protocol
        data = None
        if protocol.state is State.OPEN and self.send_in_progress is None:
            try:  # noqa: SIM105  (contextlib.suppress would be a context manager per message, which this path avoids)
                data = message.encode()
            except UnicodeEncodeError:  # a lone surrogate: websockets' own handling, below
                pass
        if data is None:
            await super().send(message)
            return
        if protocol.extensions or protocol.debug:
            protocol.send_text(data)
        else:  # what send_text queues (no fragment can be in progress: send_in_progress is None)
            protocol.writes.append(server_frame(Opcode.TEXT, data))
        failed: Exception | None = None
        try:
            self.send_data()
            if self.paused or self.transport.is_closing():
                await self.drain()
        except Exception as exc:  # as send_context: OSError from the transport, SendTimeout from drain
            failed = exc
        if failed is not None:
            await self._send_failed(failed)

    async def _send_binary(self, data: bytes) -> None:
        """`_send_text` for a binary frame (a MessagePack connection's): the same inline path."""
        protocol = self.protocol
        if protocol.state is not State.OPEN or self.send_in_progress is not None:
            await super().send(data)
            return
        if protocol.extensions or protocol.debug:
            protocol.send_binary(data)
        else:
            protocol.writes.append(server_frame(Opcode.BINARY, data))
        failed: Exception | None = None
        try:
            self.send_data()
            if self.paused or self.transport.is_closing():
                await self.drain()
        except Exception as exc:  # as send_context: OSError from the transport, SendTimeout from drain
            failed = exc
        if failed is not None:
            await self._send_failed(failed)

    async def _send_failed(self, failed: Exception) -> None:
        """End the connection as ``send_context`` does after an error while writing: abort, wait, raise."""
        if self.debug:
            self.logger.debug("! error while sending data", exc_info=failed)
        self.transport.abort()
        await asyncio.shield(self.connection_lost_waiter)  # the state is CLOSED before close_exc is read
        raise self.protocol.close_exc from failed  # what every websockets >= 17.1 raises there

    def data_received(self, data: bytes) -> None:
        """Parse at most `READ_SIZE` bytes now, the rest a slice per turn, reading nothing meanwhile."""
        if self._unparsed is not None:  # read before reading paused: behind what waits already
            self._unparsed.append(memoryview(data))
            return
        if READ_SIZE is None or len(data) <= READ_SIZE:
            super().data_received(data)
            return
        self._unparsed = collections.deque((memoryview(data)[READ_SIZE:],))
        self.transport.pause_reading()  # until the slices are parsed: memory stays bounded by one read
        super().data_received(data[:READ_SIZE])
        self._parse_later()

    def _parse_later(self) -> None:
        """Parse the next slice on the next turn, unless websockets has paused reading.

        websockets pauses reading while it holds more messages than ``max_queue`` that nobody
        has received; the slices wait then too, and `_resume_reading` goes on with them.
        """
        if not self.recv_messages.paused:
            self.loop.call_soon(self._parse_next)

    def _parse_next(self) -> None:
        if self._unparsed is None or self.recv_messages.paused:
            return
        self._parse_slice()
        if self._unparsed is not None:
            self._parse_later()
        elif not self.recv_messages.paused and self.protocol.state is not State.CLOSED:
            self.transport.resume_reading()

    def _resume_reading(self) -> None:
        """websockets wants more: the next slice if some wait, else the socket."""
        if self._unparsed is not None:
            self._parse_later()
        else:
            self.transport.resume_reading()

    def _parse_slice(self) -> None:
        unparsed = self._unparsed
        assert unparsed is not None
        assert READ_SIZE is not None
        first = unparsed[0]
        if len(first) > READ_SIZE:
            unparsed[0] = first[READ_SIZE:]
            first = first[:READ_SIZE]
        else:
            unparsed.popleft()
        if not unparsed:
            self._unparsed = None
        super().data_received(bytes(first))

    def _parse_all(self) -> None:
        """Before the end of the stream: everything read before it, at once."""
        while self._unparsed is not None:
            self._parse_slice()

    def eof_received(self) -> None:
        self._parse_all()
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._parse_all()
        keepalive(self.loop).forget(self)
        super().connection_lost(exc)

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

    def start_keepalive(self) -> None:
        """Ping from the loop's shared timers (`websuckets.keepalive`), not from a task of this connection."""
        if self.ping_interval is not None:
            keepalive(self.loop).start(self)


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


async def close_draining(socket: ServerConnection, code: int, reason: str) -> None:
    """Close ``socket`` from the task that reads it (inside a command or hook), dropping what the client still sends.

    ``socket.close`` sends the close frame, then waits for the client's, which comes after
    whatever the client sent before it. Called from the task that reads the connection, nothing
    reads those frames meanwhile: once ``max_queue`` messages wait, ``websockets`` stops reading
    the socket, the client's close frame is never read, and the close ends ``close_timeout``
    (10 s) later by aborting the connection. Here a task of its own reads and drops every
    message until the connection has closed, so the close ends as soon as the client answers.
    Only the task that reads the connection may call this: a second reader would be an error.
    """
    drain = asyncio.get_running_loop().create_task(_drop_messages(socket))
    _draining.add(drain)
    drain.add_done_callback(_draining.discard)
    try:
        await socket.close(code, reason)
    finally:
        drain.cancel()  # it ends by itself once the connection is closed; not if this close was cancelled


async def _drop_messages(socket: Connection) -> None:
    try:
        while True:
            await socket.recv(decode=False)  # the bytes as they came: not even decoded
    except ConnectionClosed:
        pass


_draining: set[asyncio.Task[None]] = set()
"""The tasks of `close_draining` that have not ended yet (the event loop keeps only weak references)."""
