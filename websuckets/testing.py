"""A test client for websuckets apps: in memory, or against a real server on loopback.

::

    async with TestClient(app) as client:            # in memory: routing, middlewares, DI
        alice = await client.connect()
        await alice.send("user create", {"nickname": "alice"})
        event = await alice.receive()
        assert event.event == "user created"

In memory, the app's handler runs on a real ``ServerConnection`` and the test's client is a
real ``ClientConnection``, joined by `websuckets.memory_server` instead of a socket: the
opening handshake, framing, size limits and closing are websockets' own. ``TestClient(app,
real=True)`` runs the same test against a real server on a free port of 127.0.0.1. Every
connect, send and receive has a timeout that fails the test saying what it waited for, and an
unexpected exception in a handler is re-raised in the test.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self
from uuid import UUID

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server
from websockets.typing import Subprotocol

from ._logging import quiet_frames
from .app import WebSuckets
from .context import Connection
from .instrument import Instrument
from .memory_server import MemoryServer
from .testing_connection import ErrorReply, Received, TestConnection
from .testing_streams import TestStream
from .wire import MSGPACK_SUBPROTOCOL

if TYPE_CHECKING:  # dishka is imported only by apps that inject (see websuckets.handlers)
    from dishka import AsyncContainer

__all__ = ["ErrorReply", "Received", "TestClient", "TestConnection", "TestStream"]

DEFAULT_TIMEOUT = 2.0


class _Listener(Instrument):
    """What a `TestClient` hears of the app it runs: unexpected errors, and connections once ready."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def connection_ready(self, connection: Connection) -> None:
        self.client._on_ready(connection)

    def unexpected_error(self, error: BaseException, where: str) -> None:
        self.client.server_errors.append(error)


class TestClient:
    """Starts an app for a test and connects clients to it.

    Args:
        app: the app under test, not started yet.
        real: serve it on a free port of 127.0.0.1 and connect real websockets clients.
        container: a container to use instead of the app's for this test, for example
            one built with fake providers (``make_async_container(AppProvider(), FakeProvider(), ...)``).
        timeout: the seconds a connect, a send or a receive may take before it fails the test.
        raise_server_exceptions: re-raise unexpected handler exceptions in the test.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: WebSuckets,
        *,
        real: bool = False,
        container: AsyncContainer | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        raise_server_exceptions: bool = True,
    ) -> None:
        self.app = app
        self.real = real
        self.timeout = timeout
        self.raise_server_exceptions = raise_server_exceptions
        self.server_errors: list[BaseException] = []
        """Unexpected exceptions raised by handlers, not yet re-raised."""
        self._container = container
        self._saved_container: AsyncContainer | None = None
        self._connections: list[TestConnection] = []
        self._ready: list[Connection] = []
        self._listener = _Listener(self)
        self._readiness = asyncio.Event()
        self._server: Server | None = None
        self.port: int | None = None
        """The server's port, when ``real``."""

    async def __aenter__(self) -> Self:
        if self._container is not None:
            self._saved_container, self.app.container = self.app.container, self._container
        self.app.add_instrument(self._listener)  # for this test only: taken out in __aexit__
        try:
            await self.app.__aenter__()
        except BaseException:
            self.app.instruments.remove(self._listener)
            raise
        if self.real:
            self._server = await self.app.serve("127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
        else:
            self._server = self._memory_server()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            for connection in self._connections:
                await connection.close()
            if self._server is not None:
                await self.app.shutdown(self._server)
        finally:
            self.app.instruments.remove(self._listener)  # it goes on listening until the app has stopped
            await self.app.__aexit__(exc_type, exc, tb)
            if self._container is not None:
                self.app.container = self._saved_container
        if exc is None:
            self.raise_server_error()

    async def connect(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] | None = None,
        path: str = "/",
        format: Literal["json", "msgpack"] = "json",
    ) -> TestConnection:
        """A new client, connected, once the server has run its connect hooks.

        ``headers``, ``subprotocols`` and ``path`` (with a query string) go into the opening
        handshake, whose checks (origin, connection cap, handshake authentication) run in
        memory too. A refused handshake raises ``websockets.exceptions.InvalidStatus``, whose
        ``response`` has the status code, as a real client's does. ``format="msgpack"`` offers
        ``websuckets.v1.msgpack`` first: `TestConnection.send` then packs commands, and `receive`
        unpacks binary frames (``bytes`` stay bytes).
        """
        if format == "msgpack":
            subprotocols = [MSGPACK_SUBPROTOCOL, *(subprotocols or ())]
        deadline = asyncio.get_running_loop().time() + self.timeout
        logger = quiet_frames(logging.getLogger("websuckets.testing"))
        if isinstance(self._server, MemoryServer):
            try:
                async with asyncio.timeout_at(deadline):
                    socket, server_side = await self._server.connect(
                        path,
                        headers=headers,
                        subprotocols=subprotocols,
                        max_size=None,
                        max_queue=None,
                        close_timeout=self.timeout,
                        logger=logger,
                    )
            except TimeoutError:
                self.raise_server_error()
                raise TimeoutError(f"timed out during the opening handshake ({self.timeout} s)") from None
            await self._wait_ready(lambda c: c.socket is server_side, socket, deadline)
            client_id = server_side.id
        else:
            socket = await connect(
                self.url + path,
                open_timeout=self.timeout,
                close_timeout=self.timeout,
                logger=logger,
                additional_headers=headers,
                subprotocols=[Subprotocol(name) for name in subprotocols] if subprotocols else None,
            )
            address = socket.local_address
            ready = await self._wait_ready(lambda c: c.socket.remote_address == address, socket, deadline)
            client_id = ready.socket.id if ready is not None else UUID(int=0)
        connection = TestConnection(self, socket, client_id)
        self._connections.append(connection)
        return connection

    async def wait_gone(self, client_id: UUID) -> None:
        """Wait until the server has unregistered a client (its disconnect hooks have run)."""
        try:
            async with asyncio.timeout(self.timeout):
                # polling the backend, the source of truth, is cheap; the timeout bounds it
                while self.app.backend.get_online(client_id) is not None:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
        except TimeoutError:
            self.raise_server_error()
            raise TimeoutError(f"client {client_id} still online {self.timeout} s after it closed") from None

    def raise_server_error(self) -> None:
        """Raise the oldest unexpected handler exception not yet raised, if any."""
        if self.raise_server_exceptions and self.server_errors:
            raise self.server_errors.pop(0)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _on_ready(self, connection: Connection) -> None:
        self._ready.append(connection)
        self._readiness.set()

    async def _wait_ready(
        self, matches: Callable[[Connection], bool], socket: ClientConnection, deadline: float
    ) -> Connection | None:
        """The server side of a new connection once its connect hooks ran, by ``deadline`` (the loop's time).

        ``None`` if the server closed the connection before.
        """
        closed = asyncio.ensure_future(socket.wait_closed())
        try:
            async with asyncio.timeout_at(deadline):
                while not closed.done():
                    for connection in self._ready:
                        if matches(connection):
                            self._ready.remove(connection)
                            return connection
                    self._readiness.clear()
                    ready = asyncio.ensure_future(self._readiness.wait())
                    try:
                        await asyncio.wait((ready, closed), return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        ready.cancel()
                return None
        except TimeoutError:
            self.raise_server_error()
            raise TimeoutError(f"the server did not run its connect hooks within {self.timeout} s") from None
        finally:
            closed.cancel()

    def _memory_server(self) -> MemoryServer:
        """The server `WebSuckets.serve` makes, with the same settings, listening nowhere."""
        return MemoryServer(self.app.handler, **self.app._server_options())
