"""`TestConnection`: one client of the app under a `websuckets.testing.TestClient`, and what it receives.

Every send and receive has the test client's timeout, which fails the test saying what it waited
for (and what arrived so far); an unexpected exception in a handler is raised instead, at the
first read after it.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID, uuid4

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from . import msgpack_codec
from .testing_streams import TestStream
from .wire import ERROR_EVENT, MISSING, MSGPACK_SUBPROTOCOL


class Tester(Protocol):
    """What a `TestConnection` uses of its `websuckets.testing.TestClient`."""

    @property
    def timeout(self) -> float: ...

    def raise_server_error(self) -> None: ...

    async def wait_gone(self, client_id: UUID) -> None: ...


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

    def __init__(self, client: Tester, socket: ClientConnection, client_id: UUID) -> None:
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
