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
import json
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self
from uuid import UUID, uuid4

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from . import msgpack_codec
from ._logging import quiet_frames
from .app import WebSuckets
from .context import Connection
from .instrument import Instrument
from .memory_server import MemoryServer
from .testing_streams import TestStream
from .wire import ERROR_EVENT, MISSING, MSGPACK_SUBPROTOCOL

if TYPE_CHECKING:  # dishka is imported only by apps that inject (see websuckets.handlers)
    from dishka import AsyncContainer

__all__ = ["ErrorReply", "Received", "TestClient", "TestConnection", "TestStream"]

DEFAULT_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Received:
    """One frame the server sent: ``raw`` is its text; the rest is set when it is an event."""

    event: str | None
    payload: Any
    id: str | int | None
    raw: str

    @classmethod
    def parse(cls, text: str) -> Received:
        try:
            data = json.loads(text)
        except ValueError:
            return cls(None, None, None, text)
        return cls.of(data, text)

    @classmethod
    def of(cls, data: Any, raw: str) -> Received:
        """The frame whose decoded value is ``data`` (MessagePack's, say) and whose text is ``raw``."""
        if not isinstance(data, dict):
            return cls(None, data, None, raw)
        return cls(data.get("event"), data.get("payload"), data.get("id"), raw)

    @property
    def is_error(self) -> bool:
        return self.event == ERROR_EVENT

    @property
    def error_name(self) -> str | None:
        """The error's ``name`` for an ``error`` event, else ``None``."""
        return self.payload.get("name") if self.is_error and isinstance(self.payload, dict) else None

    @property
    def answers(self) -> str | int | None:
        """The command id this event answers: its own ``id``, or for an error the one in its payload."""
        if self.is_error and isinstance(self.payload, dict):
            return self.payload.get("id")
        return self.id


class ErrorReply(AssertionError):
    """`TestConnection.request` got an ``error`` event instead of a reply."""

    def __init__(self, received: Received) -> None:
        super().__init__(f"the server answered with an error: {received.payload!r}")
        self.received = received
        self.name = received.error_name
        self.details = received.payload.get("details") if isinstance(received.payload, dict) else None


class TestConnection:
    """One client of the app under test."""

    __test__ = False  # not a pytest test class

    def __init__(self, client: TestClient, socket: ClientConnection, client_id: UUID) -> None:
        self._client = client
        self._socket = socket
        self._skipped: deque[str | bytes] = deque()
        self.msgpack = socket.subprotocol == MSGPACK_SUBPROTOCOL
        """Whether the connection speaks MessagePack (``connect(format="msgpack")``): commands are packed,
        binary frames unpacked; `history` and ``Received.raw`` hold them as JSON-like text."""
        self.client_id = client_id
        """The server-side ``socket.id`` of this client: its key in ``Session.online``.

        The nil UUID over a real socket that the server closed before registering it.
        """
        self.history: list[str] = []
        """Every frame received so far, oldest first."""

    async def send(
        self, event: str, payload: Any = MISSING, *, token: str | None = None, id: str | int | None = None
    ) -> None:
        """Send a command; keys left out are not sent."""
        command: dict[str, Any] = {"event": event}
        if payload is not MISSING:
            command["payload"] = payload
        if token is not None:
            command["token"] = token
        if id is not None:
            command["id"] = id
        if self.msgpack:
            await self.send_raw(msgpack_codec.pack(command))
        else:
            await self.send_raw(json.dumps(command, default=str, ensure_ascii=False))

    async def send_raw(self, frame: str | bytes) -> None:
        """Send any frame, valid or not; fails the test if the server reads nothing for the client's timeout."""
        limit = self._client.timeout
        try:
            async with asyncio.timeout(limit):
                await self._socket.send(frame)
        except TimeoutError:
            self._client.raise_server_error()
            raise AssertionError(
                f"could not send within {limit} s: the server reads nothing from this client"
            ) from None

    async def receive(self, timeout: float | None = None) -> Received:
        """The next frame, parsed; fails the test after ``timeout`` seconds (default 2).

        The failure lists what arrived so far. If a handler raised an unexpected exception,
        it is raised here instead.
        """
        return self._parse(await self._next_frame(timeout))

    async def receive_text(self, timeout: float | None = None) -> str:
        """The next frame as text (a binary frame is decoded as UTF-8, or shown as JSON when MessagePack)."""
        return self._text(await self._next_frame(timeout))

    async def _next_frame(self, timeout: float | None) -> str | bytes:
        if self._skipped:
            return self._skipped.popleft()
        return await self._read(timeout)

    async def receive_error(self, name: str | None = None, timeout: float | None = None) -> Received:
        """The next event, which must be an ``error`` (named ``name``, if given)."""
        received = await self.receive(timeout)
        if not received.is_error or (name is not None and received.error_name != name):
            raise AssertionError(f"expected error {name or ''!r}, received {received.raw}")
        return received

    async def request(self, event: str, payload: Any = MISSING, *, token: str | None = None) -> Received:
        """Send a command with a fresh ``id`` and wait for the event carrying that ``id`` back.

        Raises `ErrorReply` if it is an error. Other frames that arrive meanwhile are kept
        for the next `receive`.
        """
        command_id = uuid4().hex
        await self.send(event, payload, token=token, id=command_id)
        while True:
            frame = await self._read(None)
            received = self._parse(frame)
            if received.answers != command_id:
                self._skipped.append(frame)
                continue
            if received.is_error:
                raise ErrorReply(received)
            return received

    async def stream(
        self, event: str, payload: Any = MISSING, *, token: str | None = None, id: str | int | None = None
    ) -> TestStream:
        """Start a stream (a fresh ``id`` unless given); iterate the `TestStream` for its items, or cancel it."""
        command_id = uuid4().hex if id is None else id
        await self.send(event, payload, token=token, id=command_id)
        return TestStream(command_id, self._next_answer, self.send)

    async def _next_answer(self, command_id: str | int, timeout: float | None) -> Received:
        """The next event for ``command_id`` (kept ones first); others are kept for `receive`; an error raises."""
        for frame in self._skipped:
            received = self._parse(frame)
            if received.answers == command_id:
                self._skipped.remove(frame)
                break
        else:
            while True:
                frame = await self._read(timeout)
                received = self._parse(frame)
                if received.answers == command_id:
                    break
                self._skipped.append(frame)
        if received.is_error:
            raise ErrorReply(received)
        return received

    async def expect_closed(self, timeout: float | None = None) -> int | None:
        """Wait until the server closes the connection; its close code."""
        limit = self._client.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                while True:
                    self._remember(await self._socket.recv())
        except ConnectionClosed:
            return self._socket.close_code
        except TimeoutError:
            raise AssertionError(f"still open after {limit} s; received so far: {self.history!r}") from None

    async def close(self) -> None:
        """Close the connection; returns once the server has seen this client leave."""
        await self._socket.close()
        await self._client.wait_gone(self.client_id)

    async def _read(self, timeout: float | None) -> str | bytes:
        limit = self._client.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                frame = await self._socket.recv()
        except TimeoutError:
            self._client.raise_server_error()
            raise AssertionError(f"nothing received within {limit} s; received so far: {self.history!r}") from None
        except ConnectionClosed as exc:
            self._client.raise_server_error()
            raise AssertionError(f"the connection closed ({exc}); received so far: {self.history!r}") from None
        self._remember(frame)
        self._client.raise_server_error()
        return frame

    def _remember(self, frame: str | bytes) -> None:
        self.history.append(self._text(frame))

    def _text(self, frame: str | bytes) -> str:
        if isinstance(frame, str):
            return frame
        if self.msgpack:
            return json.dumps(_unpacked(frame), default=repr, ensure_ascii=False)
        return frame.decode()

    def _parse(self, frame: str | bytes) -> Received:
        if isinstance(frame, bytes) and self.msgpack:
            return Received.of(_unpacked(frame), self._text(frame))
        return Received.parse(self._text(frame))


def _unpacked(frame: bytes) -> Any:
    try:
        return msgpack_codec.unpack(frame)
    except ValueError:
        return frame  # not MessagePack: shown as its repr


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
