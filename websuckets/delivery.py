"""Delivery to local connections without awaiting any of them: one slow client delays nobody.

Every fan-out (a room, a user's connections, everyone) and every message that arrives from
another process ends here. The message is encoded and framed once and written to each
socket's buffer synchronously, as ``websockets.broadcast`` does (which serves connections
with an extension such as compression, whose frames differ). A connection whose write
buffer is already over `SLOW_CONSUMER_BUFFER` is not written to: it is closed with 1013 (try
again later), logged and counted, so that a client that stops reading cannot grow the
server's memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Iterable

from websockets.asyncio.connection import Connection
from websockets.asyncio.server import broadcast
from websockets.frames import CloseCode, Opcode
from websockets.protocol import State

__all__ = [
    "SLOW_CONSUMER_BUFFER",
    "SLOW_CONSUMER_GRACE",
    "DeliveryStats",
    "send_batch",
    "send_now",
    "server_frame",
    "stats",
]

logger = logging.getLogger("websuckets.delivery")

SLOW_CONSUMER_BUFFER = 2**20
"""Bytes queued for a client over which a fan-out closes it (1013) instead of queueing more."""

SLOW_CONSUMER_GRACE = 1.0
"""Seconds a slow consumer gets to read up to the close frame before its connection is dropped."""


class DeliveryStats:
    """Counters of this process's local deliveries, for logs and metrics."""

    __slots__ = ("bytes_framed_once", "delivered", "framed_by_connection", "framed_once", "slow_consumers_closed")

    def __init__(self) -> None:
        self.delivered = 0
        """Messages written to local connections by fan-outs."""
        self.framed_once = 0
        """Of those, the ones written as frames built here (once for a fan-out), past the connection's protocol."""
        self.bytes_framed_once = 0
        """The bytes of those."""
        self.framed_by_connection = 0
        """Of those, the ones framed by each connection's protocol (an extension is on), with ``websockets.broadcast``:
        their bytes pass through the connection, as a ``send``'s do, but not its ``send``."""
        self.slow_consumers_closed = 0


stats = DeliveryStats()
_closing: set[asyncio.Task[None]] = set()


def send_now(sockets: Iterable[Connection], message: str | bytes) -> int:
    """Write ``message`` to every open connection in ``sockets`` at once; how many it was written to.

    Without extensions (compression is off by default) a server's frame is the same bytes for
    every connection: it is built once and written to each transport. A connection with an
    extension, or in the middle of a fragmented message, goes through ``websockets.broadcast``.
    """
    frame: bytes | None = None
    other: list[Connection] = []
    written = 0
    for socket in sockets:
        protocol, transport = socket.protocol, socket.transport
        if protocol.state is not State.OPEN:
            continue
        if transport.get_write_buffer_size() > SLOW_CONSUMER_BUFFER:
            _close_slow(socket)
        elif protocol.extensions or socket.send_in_progress is not None or getattr(socket, "codec", None) is not None:
            other.append(socket)
        else:
            if frame is None:
                frame = _frame(message)
            transport.write(frame)
            written += 1
    if frame is not None:
        stats.framed_once += written
        stats.bytes_framed_once += written * len(frame)
    if other:
        written += _send_other(other, message)
    stats.delivered += written
    return written


def _send_other(sockets: list[Connection], message: str | bytes) -> int:
    """`send_now` to connections that take another path: an extension, or another wire format than JSON.

    The message is encoded once per format (a room of JSON and MessagePack members packs it once),
    then framed once for the connections of that format without an extension.
    """
    by_format: dict[object, list[Connection]] = {}
    for socket in sockets:
        by_format.setdefault(getattr(socket, "codec", None), []).append(socket)
    written = 0
    for codec, members in by_format.items():
        data = message if codec is None else codec.encode(message)  # type: ignore[attr-defined]
        frame: bytes | None = None
        framed = []
        for socket in members:
            if socket.protocol.extensions or socket.send_in_progress is not None:
                framed.append(socket)
                continue
            if frame is None:
                frame = _frame(data)
            socket.transport.write(frame)
            written += 1
            stats.framed_once += 1
            stats.bytes_framed_once += len(frame)
        if framed:
            broadcast(framed, data)
            count = sum(1 for socket in framed if socket.protocol.state is State.OPEN)
            written += count
            stats.framed_by_connection += count
    return written


def send_batch(socket: Connection, messages: list[str] | list[bytes]) -> None:
    """Write ``messages`` to one socket at once, in order, without awaiting: a replay, not a fan-out.

    The slow-consumer check runs once, before the batch: a replay larger than
    `SLOW_CONSUMER_BUFFER` is an answer the client asked for, not a sign that it stopped reading.
    """
    protocol, transport = socket.protocol, socket.transport
    if protocol.state is not State.OPEN:
        return
    if transport.get_write_buffer_size() > SLOW_CONSUMER_BUFFER:
        _close_slow(socket)
        return
    codec = getattr(socket, "codec", None)
    if codec is not None:  # another wire format than JSON: each message in it
        messages = [codec.encode(message) for message in messages]
    if protocol.extensions or socket.send_in_progress is not None:
        for message in messages:
            broadcast([socket], message)
        stats.framed_by_connection += len(messages)
    else:
        frames = b"".join(_frame(message) for message in messages)
        transport.write(frames)
        stats.framed_once += len(messages)
        stats.bytes_framed_once += len(frames)
    stats.delivered += len(messages)


def _frame(message: str | bytes) -> bytes:
    """The bytes of one unmasked, uncompressed frame holding ``message``: what a server sends."""
    if isinstance(message, str):
        return server_frame(Opcode.TEXT, message.encode())
    return server_frame(Opcode.BINARY, bytes(message))


_SHORT, _LONG = struct.Struct("!BBH").pack, struct.Struct("!BBQ").pack


def server_frame(opcode: Opcode, data: bytes) -> bytes:
    """One final, unmasked frame without extensions: ``Frame(opcode, data).serialize(mask=False, extensions=[])``.

    The same bytes, built without a ``Frame`` object (a fifth of the time): the header is two
    bytes, or four or ten for a longer payload, then the payload as it is.
    """
    first, size = 0x80 | opcode, len(data)
    if size < 126:
        return bytes((first, size)) + data
    if size < 65536:
        return _SHORT(first, 126, size) + data
    return _LONG(first, 127, size) + data


def _close_slow(socket: Connection) -> None:
    if socket.state is not State.OPEN:
        return
    stats.slow_consumers_closed += 1
    logger.warning("closing %s: over %d bytes queued and not read (slow consumer)", socket.id, SLOW_CONSUMER_BUFFER)
    task = asyncio.get_running_loop().create_task(_close(socket))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _close(socket: Connection) -> None:
    """Close with 1013; a client that reads nothing never gets to the close frame: drop it after a second."""
    try:
        await asyncio.wait_for(socket.close(CloseCode.TRY_AGAIN_LATER, "too slow"), SLOW_CONSUMER_GRACE)
    except TimeoutError:
        socket.transport.abort()
