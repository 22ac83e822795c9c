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
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self
from uuid import UUID, uuid4

from dishka import AsyncContainer
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.frames import Close, CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from ._logging import quiet_frames
from .app import WebSuckets
from .context import Connection
from .events import PendingAnswer, answered
from .handshake import Handshake
from .instrument import Instrument
from .wire import ERROR_EVENT, MISSING

__all__ = ["ErrorReply", "Received", "TestClient", "TestConnection"]

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
        if not isinstance(data, dict):
            return cls(None, data, None, text)
        return cls(data.get("event"), data.get("payload"), data.get("id"), text)

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
        self._skipped: deque[str] = deque()
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
        await self.send_raw(json.dumps(command, default=str, ensure_ascii=False))

    async def send_raw(self, frame: str | bytes) -> None:
        """Send any frame, valid or not."""
        await self._transport.send(frame)

    async def receive(self, timeout: float | None = None) -> Received:
        """The next frame, parsed; fails the test after ``timeout`` seconds (default 2).

        The failure lists what arrived so far. If a handler raised an unexpected exception,
        it is raised here instead.
        """
        return Received.parse(await self.receive_text(timeout))

    async def receive_text(self, timeout: float | None = None) -> str:
        """The next frame as text (a binary frame is decoded as UTF-8)."""
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
            text = await self._read(None)
            received = Received.parse(text)
            if received.answers != command_id:
                self._skipped.append(text)
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
                    self._remember(await self._transport.recv())
        except ConnectionClosed:
            return self._transport.close_code
        except TimeoutError:
            raise AssertionError(f"still open after {limit} s; received so far: {self.history!r}") from None

    async def close(self) -> None:
        """Close the connection; returns once the server has seen this client leave."""
        await self._transport.close()
        await self._client.wait_gone(self.client_id)

    async def _read(self, timeout: float | None) -> str:
        limit = self._client.timeout if timeout is None else timeout
        try:
            frame = await asyncio.wait_for(self._transport.recv(), limit)
        except TimeoutError:
            self._client.raise_server_error()
            raise AssertionError(f"nothing received within {limit} s; received so far: {self.history!r}") from None
        except ConnectionClosed as exc:
            self._client.raise_server_error()
            raise AssertionError(f"the connection closed ({exc}); received so far: {self.history!r}") from None
        text = self._remember(frame)
        self._client.raise_server_error()
        return text

    def _remember(self, frame: str | bytes) -> str:
        text = frame.decode() if isinstance(frame, bytes) else frame
        self.history.append(text)
        return text


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
        self._ready: list[Connection] = []
        self._listener = _Listener(self)
        self._readiness = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Server | None = None
        self._handshake: Handshake | None = None
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
            self._handshake = self.app.handshake(self.app.origins)
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
    ) -> TestConnection:
        """A new client, connected, once the server has run its connect hooks.

        ``headers``, ``subprotocols`` and ``path`` (with a query string) go into the opening
        handshake, whose checks (origin, connection cap, handshake authentication) run in
        memory too. A refused handshake raises ``websockets.exceptions.InvalidStatus``, whose
        ``response`` has the status code, as a real client's does.
        """
        if self.real:
            socket = await connect(
                self.url + path,
                open_timeout=self.timeout,
                logger=quiet_frames(logging.getLogger("websuckets.testing")),
                additional_headers=headers,
                subprotocols=[Subprotocol(name) for name in subprotocols] if subprotocols else None,
            )
            address = socket.local_address
            server_side = await self._wait_ready(
                lambda c: c.socket.remote_address == address, lambda: socket.state is not State.OPEN
            )
            client_id = server_side.socket.id if server_side is not None else UUID(int=0)
            connection = TestConnection(self, _RealTransport(socket), client_id)
        else:
            server, client = _memory_pair(self.app.protocol_max_size)
            server.request = _handshake_request(path, headers, subprotocols)
            assert self._handshake is not None
            refused = await self._handshake(server, server.request)  # type: ignore[arg-type]
            if refused is not None:
                raise InvalidStatus(refused)
            task = asyncio.create_task(self.app.handler(server))  # type: ignore[arg-type]
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            await self._wait_ready(lambda c: c.socket.id == server.id, lambda: server.state is not State.OPEN)
            connection = TestConnection(self, client, server.id)
        self._connections.append(connection)
        return connection

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

    def _on_ready(self, connection: Connection) -> None:
        self._ready.append(connection)
        self._readiness.set()

    async def _wait_ready(self, matches: Callable[[Connection], bool], closed: Callable[[], bool]) -> Connection | None:
        """The server side of a new connection once its connect hooks ran; ``None`` if it closed before."""
        async with asyncio.timeout(self.timeout):
            while True:
                for connection in self._ready:
                    if matches(connection):
                        self._ready.remove(connection)
                        return connection
                if closed():
                    return None
                self._readiness.clear()
                with contextlib.suppress(TimeoutError):  # look at `closed` again now and then
                    await asyncio.wait_for(self._readiness.wait(), 0.01)


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
    """One end of an in-memory connection: the part of ``ServerConnection`` handlers use."""

    logger = logging.getLogger("websuckets.testing")
    pending_answer: PendingAnswer | None = None

    def __init__(self, max_size: int | None) -> None:
        self.id = uuid4()
        self.state = State.OPEN
        self.request = _handshake_request("/", None, None)
        self.local_address = ("memory", 0)
        self.remote_address = ("memory", 0)
        self.latency = 0.0
        self.close_code: int | None = None
        self.close_reason = ""
        self.max_size = max_size
        self.peer: _MemorySocket
        self._inbox: asyncio.Queue[str | bytes | Close] = asyncio.Queue()

    async def send(self, message: str | bytes, text: bool | None = None) -> None:
        if self.pending_answer is not None:  # as websuckets.connection.GuardedConnection.send
            message, self.pending_answer = answered(self.pending_answer, message)
        if not isinstance(message, str | bytes | bytearray | memoryview):
            raise TypeError(f"data must be str or bytes-like, not {type(message).__name__}")
        if self.state is not State.OPEN:
            raise self._closed_error()
        self.send_nowait(message)

    def send_nowait(self, message: str | bytes) -> None:
        """Queue a message for the peer at once: what a broadcast does (`websuckets.delivery.send_now`)."""
        self.peer._inbox.put_nowait(message if isinstance(message, str) else bytes(message))

    async def recv(self) -> str | bytes:
        if self.state is State.CLOSED and self._inbox.empty():
            raise self._closed_error()
        item = await self._inbox.get()
        if isinstance(item, Close):
            self._closed(item)
            raise self._closed_error()
        if self.max_size is not None and len(item.encode() if isinstance(item, str) else item) > self.max_size:
            self.close_now(CloseCode.MESSAGE_TOO_BIG, "message too big")
            raise self._closed_error()
        return item

    def respond(self, status: int, text: str) -> Response:
        """A plain HTTP response refusing the handshake, as ``ServerConnection.respond`` makes."""
        return ServerProtocol().reject(status, text)

    async def ping(self, data: str | bytes | None = None) -> asyncio.Future[float]:
        pong: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        pong.set_result(0.0)
        return pong

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[str | bytes]:
        try:
            while True:
                yield await self.recv()
        except ConnectionClosedOK:
            return

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        self.close_now(code, reason)

    def close_now(self, code: int, reason: str) -> None:
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


def _handshake_request(path: str, headers: Mapping[str, str] | None, subprotocols: Sequence[str] | None) -> Request:
    """The opening handshake of an in-memory client, as a real client would send it."""
    request = Headers({"Host": "memory", "Upgrade": "websocket", "Connection": "Upgrade"})
    if subprotocols:
        request["Sec-WebSocket-Protocol"] = ", ".join(subprotocols)
    for name, value in (headers or {}).items():
        request[name] = value
    return Request(path, request)


def _memory_pair(max_size: int | None) -> tuple[_MemorySocket, _MemorySocket]:
    """A server end that enforces ``max_size`` on what it receives, and a client end."""
    server, client = _MemorySocket(max_size), _MemorySocket(None)
    server.peer, client.peer = client, server
    return server, client
