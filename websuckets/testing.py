"""A test client for websuckets apps: in memory, or against a real server on loopback.

::

    async with TestClient(app) as client:            # in memory: routing, middlewares, DI
        alice = await client.connect()
        await alice.send("user create", {"nickname": "alice"})
        event = await alice.receive()
        assert event.event == "user created"

``TestClient(app, real=True)`` runs the same test against a real server on a free port of
127.0.0.1. Every receive has a timeout that fails the test with what arrived so far, and
an unexpected exception in a handler is re-raised in the test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self
from uuid import UUID, uuid4

from dishka import AsyncContainer
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Close, CloseCode
from websockets.protocol import State

from .app import WebSuckets
from .envelope import MISSING

__all__ = ["ErrorReply", "Received", "TestClient", "TestConnection"]

DEFAULT_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Received:
    """One event the server sent: ``raw`` is the text of the frame."""

    event: str | None
    payload: Any
    id: str | int | None
    raw: str

    @property
    def is_error(self) -> bool:
        return self.event == "error"

    @property
    def error_name(self) -> str | None:
        """The error's ``name`` for an ``error`` event, else ``None``."""
        return self.payload.get("name") if self.is_error and isinstance(self.payload, dict) else None


class ErrorReply(AssertionError):
    """`TestConnection.request` got an ``error`` event instead of a reply."""

    def __init__(self, received: Received) -> None:
        super().__init__(f"the server answered with an error: {received.payload!r}")
        self.received = received
        self.name = received.error_name
        self.details = received.payload.get("details") if isinstance(received.payload, dict) else None


class _Transport(Protocol):
    async def send(self, message: str | bytes) -> None: ...
    async def recv(self) -> str | bytes: ...
    async def close(self) -> None: ...
    @property
    def close_code(self) -> int | None: ...


class TestConnection:
    """One client of the app under test."""

    __test__ = False  # not a pytest test class

    def __init__(self, client: TestClient, transport: _Transport, client_id: UUID) -> None:
        self._client = client
        self._transport = transport
        self.client_id = client_id
        """The server-side ``socket.id`` of this client: its key in ``Session.online``."""
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
        await self.send_raw(json.dumps(command, default=str))

    async def send_raw(self, frame: str | bytes) -> None:
        """Send any frame, valid or not."""
        await self._transport.send(frame)

    async def receive(self, timeout: float | None = None) -> Received:
        """The next event; fails the test after ``timeout`` seconds (default 2) with what arrived so far.

        If a handler raised an unexpected exception, it is raised here instead.
        """
        text = await self.receive_text(timeout)
        data = json.loads(text)
        if not isinstance(data, dict):
            return Received(None, data, None, text)
        return Received(data.get("event"), data.get("payload"), data.get("id"), text)

    async def receive_text(self, timeout: float | None = None) -> str:
        """The next frame as text (a binary frame is decoded as UTF-8)."""
        limit = self._client.timeout if timeout is None else timeout
        try:
            frame = await asyncio.wait_for(self._transport.recv(), limit)
        except TimeoutError:
            self._client.raise_server_error()
            raise AssertionError(f"nothing received within {limit} s; received so far: {self.history!r}") from None
        except ConnectionClosed as exc:
            self._client.raise_server_error()
            raise AssertionError(f"the connection closed ({exc}); received so far: {self.history!r}") from None
        text = frame.decode() if isinstance(frame, bytes) else frame
        self.history.append(text)
        self._client.raise_server_error()
        return text

    async def receive_error(self, name: str | None = None, timeout: float | None = None) -> Received:
        """The next event, which must be an ``error`` (named ``name``, if given)."""
        received = await self.receive(timeout)
        if not received.is_error or (name is not None and received.error_name != name):
            raise AssertionError(f"expected error {name or ''!r}, received {received.raw}")
        return received

    async def request(self, event: str, payload: Any = MISSING, *, token: str | None = None) -> Received:
        """Send a command with a fresh ``id`` and wait for the event carrying that ``id`` back.

        Raises `ErrorReply` if it is an error. Events without that id are skipped.
        """
        command_id = uuid4().hex
        await self.send(event, payload, token=token, id=command_id)
        while True:
            received = await self.receive()
            if _reply_id(received) != command_id:
                continue
            if received.is_error:
                raise ErrorReply(received)
            return received

    async def expect_closed(self, timeout: float | None = None) -> int | None:
        """Wait until the server closes the connection; its close code."""
        limit = self._client.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                while True:
                    frame = await self._transport.recv()
                    self.history.append(frame if isinstance(frame, str) else frame.decode())
        except ConnectionClosed:
            return self._transport.close_code
        except TimeoutError:
            raise AssertionError(f"still open after {limit} s; received so far: {self.history!r}") from None

    async def close(self) -> None:
        """Close the connection; returns once the server has seen this client leave."""
        await self._transport.close()
        await self._client.wait_gone(self.client_id)


def _reply_id(received: Received) -> str | int | None:
    """The id an event answers: its own, or for an error the id inside its payload."""
    if received.is_error and isinstance(received.payload, dict):
        return received.payload.get("id")
    return received.id


class TestClient:
    """Starts an app for a test and connects clients to it.

    Args:
        app: the app under test, not started yet.
        real: serve it on a free port of 127.0.0.1 and connect real websockets clients.
        container: a container to use instead of the app's for this test, for example
            one built with fake providers (``make_async_container(AppProvider(), FakeProvider(), ...)``).
        timeout: the default of every receive, in seconds.
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
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Server | None = None
        self.port: int | None = None
        """The server's port, when ``real``."""

    async def __aenter__(self) -> Self:
        if self._container is not None:
            self._saved_container, self.app.container = self.app.container, self._container
        await self.app.__aenter__()
        self.app.dispatcher.error_listeners.append(self.server_errors.append)
        if self.real:
            self._server = await self.app.serve("127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            for connection in self._connections:
                await connection.close()
            if self._server is not None:
                await self.app.shutdown(self._server)
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self.timeout)
        finally:
            await self.app.__aexit__(exc_type, exc, tb)
            if self._container is not None:
                self.app.container = self._saved_container
        if exc is None:
            self.raise_server_error()

    async def connect(self) -> TestConnection:
        """A new client, connected and past the connect hooks."""
        if self.real:
            known = set(self.app.backend.online_ids())
            socket = await connect(self.url, open_timeout=self.timeout)
            client_id = await self._new_client_id(known)
            connection = TestConnection(self, _RealTransport(socket), client_id)
        else:
            server_side, client_side = _memory_pair()
            task = asyncio.create_task(self.app.handler(server_side))  # type: ignore[arg-type]
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            connection = TestConnection(self, client_side, server_side.id)
        self._connections.append(connection)
        await asyncio.sleep(0)  # let the server run the connect hooks
        return connection

    async def _new_client_id(self, known: set[UUID]) -> UUID:
        """The id of the connection the server registered since ``known`` was taken."""
        async with asyncio.timeout(self.timeout):
            while True:
                new = set(self.app.backend.online_ids()) - known
                if new:
                    return new.pop()
                await asyncio.sleep(0.001)

    async def wait_gone(self, client_id: UUID) -> None:
        """Wait until the server has unregistered a client (its disconnect hooks have run)."""
        async with asyncio.timeout(self.timeout):
            # polling the backend, the source of truth, is cheap; the timeout bounds it
            while self.app.backend.get_online(client_id) is not None:  # noqa: ASYNC110
                await asyncio.sleep(0.001)

    def raise_server_error(self) -> None:
        """Raise the oldest unexpected handler exception not yet raised, if any."""
        if self.raise_server_exceptions and self.server_errors:
            raise self.server_errors.pop(0)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


class _RealTransport:
    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket

    async def send(self, message: str | bytes) -> None:
        await self.socket.send(message)

    async def recv(self) -> str | bytes:
        return await self.socket.recv()

    async def close(self) -> None:
        await self.socket.close()

    @property
    def close_code(self) -> int | None:
        return self.socket.close_code


class _MemorySocket:
    """One end of an in-memory connection: the subset of ``ServerConnection`` handlers use."""

    def __init__(self) -> None:
        self.id = uuid4()
        self.state = State.OPEN
        self.remote_address = ("memory", 0)
        self.request = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.peer: _MemorySocket
        self._inbox: asyncio.Queue[str | bytes | Close] = asyncio.Queue()

    async def send(self, message: str | bytes, text: bool | None = None) -> None:
        if self.state is not State.OPEN:
            raise self._closed_error()
        self.peer._inbox.put_nowait(message)

    async def recv(self) -> str | bytes:
        if self.state is State.CLOSED and self._inbox.empty():
            raise self._closed_error()
        item = await self._inbox.get()
        if isinstance(item, Close):
            self._closed(item)
            raise self._closed_error()
        return item

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[str | bytes]:
        try:
            while True:
                yield await self.recv()
        except ConnectionClosedOK:
            return

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        if self.state is not State.OPEN:
            return
        close = Close(code, reason)
        self._closed(close)
        self.peer._inbox.put_nowait(close)

    def _closed(self, close: Close) -> None:
        self.state = State.CLOSED
        self.close_code, self.close_reason = close.code, close.reason

    def _closed_error(self) -> ConnectionClosed:
        close = Close(self.close_code or CloseCode.NORMAL_CLOSURE, self.close_reason)
        if close.code in (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY):
            return ConnectionClosedOK(close, close, rcvd_then_sent=True)
        return ConnectionClosedError(close, close, rcvd_then_sent=True)


def _memory_pair() -> tuple[_MemorySocket, _MemorySocket]:
    server, client = _MemorySocket(), _MemorySocket()
    server.peer, client.peer = client, server
    return server, client
