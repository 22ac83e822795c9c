"""An in-memory websockets server: websockets' own connections at both ends, no socket between them.

`MemoryServer` is a ``websockets.asyncio.server.Server`` that listens nowhere. `MemoryServer.connect`
opens a connection to it over `pipe`, two asyncio transports that hand what one end writes to
the other end's protocol on a later turn of the event loop. The server end is a real
``ServerConnection`` (or the subclass given as ``create_connection``) driven by websockets'
sans-I/O ``ServerProtocol``, and the client end a real ``ClientConnection`` with its
``ClientProtocol``: the opening handshake is HTTP over the pipe (``process_request`` sees the
client's request), frames are parsed and their size checked, close frames are exchanged, and
the handler runs as ``websockets.asyncio.server.serve`` runs it. No file descriptor, port or
thread is used, so it behaves the same on every platform asyncio runs on.

What the pipe keeps of TCP: bytes arrive in order, on the next turn of the loop, all that was
written since at once. Until then, and for as long as the peer pauses reading, they count in the
writer's buffer (``get_write_buffer_size``), which pauses the writing protocol past its
high-water mark: a writer that never yields, or a peer that reads nothing, holds the writer back
as full socket buffers would (sooner: no kernel buffers take megabytes first). ``close`` delivers
what was written, then the end of the stream; ``write_eof`` half-closes; ``abort`` ends the
connection at once, dropping only what the peer was not reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import cast

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import Server, ServerConnection
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from websockets.http11 import SERVER, Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import LoggerLike, Subprotocol
from websockets.uri import parse_uri

ADDRESS = ("memory", 0)
"""Both ends' ``local_address`` and ``remote_address``."""

ProcessRequest = Callable[[ServerConnection, Request], Awaitable[Response | None] | Response | None]
SelectSubprotocol = Callable[[ServerConnection, Sequence[Subprotocol]], Subprotocol | None]


class MemoryTransport(asyncio.Transport):
    """One end of a `pipe`."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__({"peername": ADDRESS, "sockname": ADDRESS})
        self._loop = asyncio.get_running_loop()
        self._protocol = protocol
        self.peer: MemoryTransport
        self._pending: list[bytes] = []  # written, not yet handed to the peer
        self._size = 0
        self._high, self._low = 64 * 1024, 16 * 1024
        self._writing_paused = False
        self._reading = True
        self._eof = False  # nothing more is written: the peer gets EOF after the pending bytes
        self._eof_sent = False
        self._closing = False
        self._lost = False
        self._flushing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._eof and not self._closing:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data or self._closing:
            return
        self._pending.append(bytes(data))
        self._size += len(data)
        self._flush_soon()
        self._check_high()

    def write_eof(self) -> None:
        if not self._eof:
            self._eof = True
            self._flush_soon()

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        """Stop reading; deliver what was written, then EOF; then ``connection_lost``."""
        if self._closing:
            return
        self._closing = self._eof = True
        self._reading = False
        self._flush_soon()

    def abort(self) -> None:
        """End now: what the peer is not reading is dropped, the rest and EOF still reach it."""
        if self._lost:
            return
        self._closing = self._eof = True
        self._reading = False
        if not self.peer._reading:
            self._drop_pending()
        self._flush_soon()
        self._connection_lost()

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        if not self._closing:
            self._reading = False

    def resume_reading(self) -> None:
        if not self._reading and not self._closing:
            self._reading = True
            self.peer._flush_soon()

    def is_reading(self) -> bool:
        return self._reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        self._high, self._low = high, high // 4 if low is None else low
        self._check_high()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet handed to the peer: those of this turn of the loop, and those it does not read."""
        return self._size

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = cast(asyncio.Protocol, protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def _flush_soon(self) -> None:
        if not self._flushing:
            self._flushing = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Hand the pending bytes, then EOF, to the peer if it reads; end this side once they are gone."""
        self._flushing = False
        peer = self.peer
        if peer._lost:
            self._drop_pending()
        elif peer._reading:
            if self._pending:
                data = b"".join(self._pending)
                self._drop_pending()
                peer._protocol.data_received(data)
            if self._eof and not self._eof_sent:
                self._eof_sent = True
                peer._eof_received()
        if self._closing and not self._pending:
            self._connection_lost()

    def _eof_received(self) -> None:
        if not self._lost and not self._protocol.eof_received():
            self.close()

    def _drop_pending(self) -> None:
        self._pending.clear()
        self._size = 0
        if self._writing_paused and not self._lost:
            self._writing_paused = False
            self._protocol.resume_writing()

    def _check_high(self) -> None:
        if not self._writing_paused and not self._lost and self.get_write_buffer_size() > self._high:
            self._writing_paused = True
            self._protocol.pause_writing()

    def _connection_lost(self) -> None:
        if self._lost:
            return
        self._lost = True
        self._loop.call_soon(self._protocol.connection_lost, None)
        self.peer._flush_soon()  # what the peer still writes goes nowhere now


def pipe(server: asyncio.Protocol, client: asyncio.Protocol) -> None:
    """Connect two protocols with a pair of `MemoryTransport`; the server's ``connection_made`` first."""
    server_end, client_end = MemoryTransport(server), MemoryTransport(client)
    server_end.peer, client_end.peer = client_end, server_end
    server.connection_made(server_end)
    client.connection_made(client_end)


class _Listener:
    """What a websockets ``Server`` asks of its ``asyncio.Server``, for a server without sockets."""

    sockets = ()

    def __init__(self) -> None:
        self.serving = True

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def is_serving(self) -> bool:
        return self.serving

    def close(self) -> None:
        self.serving = False

    async def wait_closed(self) -> None:
        return None


async def _never_created() -> asyncio.Server:
    raise AssertionError("a MemoryServer listens nowhere")  # its `server` is set at construction


class MemoryServer(Server):
    """A websockets ``Server`` without sockets; `connect` opens a connection to it in memory.

    The arguments mean what they mean for ``websockets.asyncio.server.serve``. It serves as
    soon as it is made; ``close()`` and ``wait_closed()`` shut it down as they do a listening
    server (opening handshakes refused with 503, open connections closed with 1001).
    """

    def __init__(
        self,
        handler: Callable[[ServerConnection], Awaitable[None]],
        *,
        process_request: ProcessRequest | None = None,
        select_subprotocol: SelectSubprotocol | None = None,
        compression: str | None = "deflate",
        open_timeout: float | None = 10,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        max_size: int | None = 2**20,
        logger: LoggerLike | None = None,
        create_connection: type[ServerConnection] = ServerConnection,
    ) -> None:
        super().__init__(_never_created, self._serve, logger)
        self.server = cast(asyncio.Server, _Listener())  # duck-typed: websockets only calls the methods above
        self.connection_handler = handler
        self.process_request = process_request
        self.select_subprotocol = select_subprotocol
        self.extensions = enable_server_permessage_deflate(None) if compression == "deflate" else None
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_size = max_size
        self.create_connection = create_connection

    async def connect(
        self,
        path: str = "/",
        *,
        headers: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] | None = None,
        compression: str | None = "deflate",
        max_size: int | None = 2**20,
        max_queue: int | None = 16,
        close_timeout: float | None = 10,
        logger: LoggerLike | None = None,
    ) -> tuple[ClientConnection, ServerConnection]:
        """Open a connection (client end, server end) once the opening handshake is done.

        A refused handshake raises ``websockets.exceptions.InvalidStatus``, as
        ``websockets.asyncio.client.connect`` does. The arguments mean what they mean there;
        ``path`` is the request's path, with its query string.
        """
        server = self._new_connection()
        protocol = ClientProtocol(
            parse_uri(f"ws://{ADDRESS[0]}{path}"),
            extensions=enable_client_permessage_deflate(None) if compression == "deflate" else None,
            subprotocols=[Subprotocol(name) for name in subprotocols] if subprotocols else None,
            max_size=max_size,
            logger=logger,
        )
        client = ClientConnection(protocol, ping_interval=None, close_timeout=close_timeout, max_queue=max_queue)
        pipe(server, client)
        try:
            await client.handshake(headers)
        except BaseException:
            client.transport.abort()
            raise
        return client, server

    def _new_connection(self) -> ServerConnection:
        """What ``serve``'s protocol factory makes: the connection, its handler task started."""
        connection: ServerConnection
        select = self.select_subprotocol

        def select_subprotocol(protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
            assert select is not None
            return select(connection, offered)

        protocol = ServerProtocol(
            extensions=self.extensions,
            select_subprotocol=None if select is None else select_subprotocol,
            max_size=self.max_size,
            logger=self.logger,
        )
        connection = self.create_connection(
            protocol, self, ping_interval=self.ping_interval, ping_timeout=self.ping_timeout
        )
        return connection

    async def _serve(self, connection: ServerConnection) -> None:
        """One connection's life, as ``serve`` leads it: handshake, handler, close."""
        try:
            async with asyncio.timeout(self.open_timeout):
                await connection.handshake(self.process_request, None, SERVER)
            if connection.protocol.state is not State.OPEN:
                connection.transport.abort()
                return
            self.all_connections.add(connection)
            connection.start_keepalive()
            try:
                async with connection:
                    await self.connection_handler(connection)
            except Exception:
                connection.logger.error("connection handler failed", exc_info=True)
            finally:
                self.all_connections.discard(connection)
        except Exception:
            connection.transport.abort()
        finally:
            self.handler_tasks.discard(cast(asyncio.Task[None], asyncio.current_task()))
