"""`Client`: a connection to a websuckets server that reconnects and resumes by itself.

One task per client runs the connection: it opens it, sends the resume and the queued
commands, reads events until the connection drops, then waits (`Backoff`) and opens it again,
until `Client.close` or ``max_retries``. Everything the client says goes to the
``websuckets.client`` logger; never a token, nor a frame's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as open_connection
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from .._logging import quiet_frames
from ..wire import CANCEL_EVENT, GAP_EVENT, MISSING, RESUME_EVENT, SUBPROTOCOL, TOKEN_SUBPROTOCOL
from .backoff import Backoff
from .errors import ClientError
from .events import ServerEvent
from .frames import Format, Frames
from .listeners import Callback, Inbox, Listeners
from .outbox import Outbox
from .pending import PendingRequests
from .positions import Positions, Report
from .streams import Streams, next_event

logger = logging.getLogger("websuckets.client")


class Client:
    """A client of a websuckets server: requests, commands, events, reconnection, resume.

    Args:
        url: the server, ``ws://`` or ``wss://``.
        token: sent as ``"token"`` with every command while it is not ``None`` (``client.token``).
        token_event: an event whose payload (a string, or an object with a string ``token``)
            replaces ``client.token``; ``None`` to manage the token yourself.
        handshake_token: also present the token when the connection opens (and reopens), as
            the subprotocol ``websuckets.token.<token>`` beside ``websuckets``.
        reconnect: reconnect when the connection drops (never after `close`).
        min_delay: seconds before the first reconnection attempt (see `Backoff`).
        max_delay: the cap on the delay between attempts, in seconds.
        factor: how much the delay grows after each failed attempt.
        jitter: the random part of each delay, from 0 (none) to 1 (all of it).
        max_retries: attempts in a row before giving up; ``None`` for no limit.
        timeout: the default `request` timeout, in seconds.
        open_timeout: seconds `start` waits for the first connection; also each attempt's limit.
        max_queue: commands kept while disconnected, sent once connected.
        max_buffer: events kept for ``async for`` (the oldest dropped past it; 0 keeps none).
        max_rooms: rooms whose position the client remembers, to resume them.
        format: ``"json"``, or ``"msgpack"`` to speak MessagePack in binary frames (the
            subprotocol ``websuckets.v1.msgpack``; needs ``websuckets[msgpack]``): ``bytes`` in
            payloads travel raw, and events' payloads hold them as ``bytes``.
        connect_options: passed to `websockets.asyncio.client.connect` (``ssl``,
            ``additional_headers``, ``max_size``...).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        token_event: str | None = "new token",
        handshake_token: bool = False,
        reconnect: bool = True,
        min_delay: float = 0.25,
        max_delay: float = 10.0,
        factor: float = 2.0,
        jitter: float = 0.5,
        max_retries: int | None = None,
        timeout: float = 10.0,
        open_timeout: float = 10.0,
        max_queue: int = 100,
        max_buffer: int = 1000,
        max_rooms: int = 100,
        format: Format = "json",
        **connect_options: Any,
    ) -> None:
        parse_uri(url)  # an invalid URL fails here, not in the background
        self._frames = Frames(format)
        self.format = format
        self.url = url
        self.token = token
        self.token_event = token_event
        self.handshake_token = handshake_token
        self.reconnect = reconnect
        self.backoff = Backoff(min_delay, max_delay, factor, jitter, max_retries)
        self.timeout = timeout
        self.open_timeout = open_timeout
        self.client_id: str | None = None
        """This connection's id on a ``WebSuckets(welcome=True)`` server; ``None`` until it says, and after a drop."""
        self.positions = Positions(max_rooms)
        """Room -> the `websuckets.Position` of the last message seen there."""
        self.connect_options = connect_options
        self._listeners = Listeners()
        self._inbox = Inbox(max_buffer)
        self._pending = PendingRequests()
        self._streams = Streams()
        self._outbox = Outbox(self._frames, max_queue, self._pending, self._streams, lambda: self.token)
        self._resumes: set[str | int] = set()
        self._socket: ClientConnection | None = None
        self._ready = False  # open, and the resume and the queued commands went out
        self._opened = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._failure = ""  # why the last attempt to connect failed
        parts = urlsplit(url)
        self._where = f"{parts.scheme}://{parts.hostname}:{parts.port}{parts.path}"  # no query, no user info

    # the API

    @property
    def connected(self) -> bool:
        """Whether the connection is open now (and what was queued has gone out)."""
        return self._ready

    @property
    def max_queue(self) -> int:
        """The commands kept while disconnected, at most (the ``max_queue`` argument)."""
        return self._outbox.max_queue

    @property
    def closed(self) -> bool:
        """Whether the client is closed for good: `close` was called, or it gave up reconnecting."""
        return self._closed

    def on(self, event: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback(event)`` for every event named ``event``; returns a function that unsubscribes.

        Events answering a `request` go to that request only. ``"open"``, ``"close"`` and
        ``"resumed"`` are the client's own. ``callback`` may be a coroutine function.
        """
        return self._listeners.on(event, callback)

    def off(self, event: str, callback: Callback) -> None:
        """Stop calling ``callback`` for ``event``."""
        self._listeners.off(event, callback)

    async def send(self, event: str, payload: Any = MISSING) -> None:
        """Send a command without waiting for an answer; answers and errors go to listeners.

        While disconnected, the command waits for the connection (raises `ClientError`
        ``queue_full`` past ``max_queue``, ``closed`` once the client is closed).
        """
        await self._enqueue(self._frames.command(event, payload))

    async def request(self, event: str, payload: Any = MISSING, *, timeout: float | None = None) -> ServerEvent:
        """Send a command with a fresh ``id``; the event that carries the ``id`` back.

        Raises `ClientError`: the server's error (its name), or ``timeout`` (after ``timeout``
        seconds, the client's ``timeout`` by default), ``disconnected``, ``closed``, ``queue_full``.
        The answer is what the handler sends with ``ctx.reply(...)``, or, for a handler without
        ``Context``, the first event it sends back (the server adds the id to it).
        """
        limit = self.timeout if timeout is None else timeout
        command_id, pending = self._pending.open()
        try:
            async with asyncio.timeout(limit):
                await self._enqueue(self._frames.command(event, payload, command_id))
                return await pending.future
        except TimeoutError:
            raise ClientError("timeout", f"no answer to {event!r} within {limit} s") from None
        finally:
            self._pending.discard(command_id)

    async def stream(
        self, event: str, payload: Any = MISSING, *, timeout: float | None = None
    ) -> AsyncIterator[ServerEvent]:
        """Start a stream (a command whose handler yields): its items, as they come, until its end.

        ``async for item in client.stream("search", {"text": "ws"}):``. Leaving the loop early
        (``break``, an exception, the task cancelled) cancels the stream on the server with
        ``websuckets cancel``; wrap it in ``contextlib.aclosing`` for that to happen at once
        rather than when the loop's generator is collected. Raises `ClientError`: the server's
        error (which ends the stream), or ``timeout`` (no item for ``timeout`` seconds; ``None``,
        the default, waits as long as the stream runs), ``disconnected``, ``closed``, ``queue_full``.
        """
        command_id = self._pending.next_id()
        incoming = self._streams.open(command_id)
        ended = False
        try:
            await self._enqueue(self._frames.command(event, payload, command_id))
            while (item := await next_event(incoming, timeout)) is not None:
                yield item
            ended = True
        except ClientError as error:  # the stream ended on the server (an error), or there is no server to tell
            ended = error.name != "timeout"  # the client's own timeout: the stream still runs there
            raise
        finally:
            cancel = not ended and incoming.sent
            self._streams.discard(command_id, cancelled=cancel)
            if cancel:
                await self._cancel(command_id)

    async def _cancel(self, command_id: int) -> None:
        """Tell the server to cancel a stream, if the connection it runs on is still open."""
        socket = self._socket
        if not self._ready or socket is None:
            return  # it ended with the connection it ran on
        with contextlib.suppress(ConnectionClosed):  # it ends with the connection that is closing
            await self._outbox.write(socket, self._frames.command(CANCEL_EVENT, MISSING, command_id))

    async def start(self) -> None:
        """Connect; returns once the connection is open, raises `ClientError` if it does not open.

        The error is ``timeout`` after ``open_timeout`` seconds, or ``closed`` when the client
        gave up first (``max_retries``, ``reconnect=False``) or was closed; the client is then closed.
        """
        if self._closed and self._task is None:
            raise ClientError("closed", "the client is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"websuckets client {self._where}")
        try:
            async with asyncio.timeout(self.open_timeout):
                opened = await _first_done(self._opened.wait(), self._task)
        except TimeoutError:
            await self.close()
            why = f"could not connect to {self._where} in {self.open_timeout} s: {self._failure}"
            raise ClientError("timeout", why) from None
        if not opened:
            await self.close()
            raise ClientError("closed", f"could not connect to {self._where}: {self._failure or 'closed'}")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close for good: no more reconnection; queued commands are dropped, pending requests fail with ``closed``."""
        self._give_up("the client was closed")
        socket, task = self._socket, self._task
        if socket is not None:
            await socket.close(code, reason)
        elif task is not None:
            task.cancel()  # waiting to retry, or connecting: nothing to close
        if task is None:
            self._inbox.close()  # never started: no task will
        elif task is not asyncio.current_task():
            await asyncio.wait([task])

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ServerEvent:
        """The next event that answers no request, the client's own included; stops once the client closes."""
        return await self._inbox.get()

    # the connection's task

    async def _run(self) -> None:
        attempt = 0
        try:
            while True:
                socket = await self._open()
                code, reason = 1006, ""
                if socket is not None:
                    attempt = 0
                    await self._serve(socket)
                    # an int, as the close frame gave it: websockets' own 1005 and 1006 are CloseCode members
                    code, reason = int(socket.close_code or 1006), socket.close_reason or ""
                delay = None if self._closed or not self.reconnect else self.backoff.delay(attempt)
                attempt += 1
                self._lost(code, reason, delay)
                if delay is None:
                    return
                await asyncio.sleep(delay)
        except Exception:
            logger.exception("the client of %s failed", self._where)
        finally:
            self._give_up("the connection closed and will not reopen")
            self._inbox.close()

    async def _open(self) -> ClientConnection | None:
        wanted = self._frames.subprotocol
        offered = [Subprotocol(wanted)] if wanted else []
        if self.handshake_token and self.token:
            offered += [Subprotocol(SUBPROTOCOL), Subprotocol(TOKEN_SUBPROTOCOL + self.token)]
        try:
            socket = await open_connection(
                self.url,
                subprotocols=offered or None,
                open_timeout=self.open_timeout,
                logger=quiet_frames(logger),  # frames carry tokens
                **self.connect_options,
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            self._failure = str(exc) or type(exc).__name__
            logger.warning("could not connect to %s: %s", self._where, self._failure)
            return None
        if wanted and socket.subprotocol != wanted:  # a server from before it
            self._failure = f"the server did not select {wanted}"
            logger.warning("giving up on %s: %s", self._where, self._failure)
            self._give_up(self._failure)
            await socket.close()
            return None
        return socket

    async def _serve(self, socket: ClientConnection) -> None:
        """Greet the server, then read its events until the connection closes."""
        self._socket = socket
        try:
            await self._greet(socket)
            async for frame in socket:
                await self._receive(socket, ServerEvent.read(frame, self._frames.unpack))
        except ConnectionClosed:
            pass
        finally:
            self._socket, self._ready = None, False

    async def _greet(self, socket: ClientConnection) -> None:
        """The resume first, then the queued commands, in order; then the client is connected."""
        for payload in self.positions.resume_payloads():
            await self._resume(socket, payload)
        await self._outbox.flush(socket)
        self._ready = True
        self._opened.set()
        logger.info("connected to %s", self._where)
        self._emit(ServerEvent.local("open"))

    def _lost(self, code: int, reason: str, reconnect_in: float | None) -> None:
        self.client_id = None
        self._opened.clear()
        self._resumes.clear()
        self.positions.failed()  # no answer will come on this connection
        why = f"the connection closed ({code}) after the command was sent"
        self._pending.fail("disconnected", why, sent_only=True)
        self._streams.fail("disconnected", why, sent_only=True)
        if reconnect_in is not None:
            logger.warning("lost %s (%d %s); reconnecting in %.2f s", self._where, code, reason, reconnect_in)
        elif not self._closed:
            logger.warning("lost %s (%d %s); not reconnecting", self._where, code, reason)
            self._give_up("the connection closed and will not reopen")
        self._emit(ServerEvent.local("close", {"code": code, "reason": reason, "reconnect_in": reconnect_in}))

    # sending

    async def _enqueue(self, command: dict[str, Any]) -> None:
        if self._closed:
            raise ClientError("closed", "the client is closed")
        socket = self._socket
        if self._ready and socket is not None:
            try:
                await self._outbox.transmit(socket, command)
                return
            except ConnectionClosed:
                if self._closed:
                    raise ClientError("closed", "the client is closed") from None
        self._outbox.keep(command)

    async def _resume(self, socket: ClientConnection, payload: dict[str, Any]) -> None:
        command_id = self._pending.next_id()
        self._resumes.add(command_id)
        self.positions.resuming(payload["rooms"], command_id)
        logger.info("resuming %d rooms", len(payload["rooms"]))
        await self._outbox.write(socket, self._frames.command(RESUME_EVENT, payload, command_id))

    # receiving

    async def _receive(self, socket: ClientConnection, event: ServerEvent | None) -> None:
        if event is None:
            logger.debug("ignored a frame that is not an event")
            return
        if not self.positions.observe(event):
            logger.debug("dropped a duplicate in room %r (offset %s)", event.room, event.offset)
            return
        self._take_token(event)
        if event.event == "welcome" and isinstance(event.payload, dict):
            client_id = event.payload.get("client_id")
            self.client_id = client_id if isinstance(client_id, str) else self.client_id
        answers = event.answers
        if answers in self._resumes:
            self._resumes.discard(answers)
            if event.is_error:
                self.positions.failed(answers)
                logger.warning("the server refused to resume: %s", ClientError.from_payload(event.payload))
            return
        if self._pending.answer(event) or self._streams.deliver(event):
            return
        self._emit(event)
        if (report := Report.read(event)) is not None and report.recovered is not None:
            self._emit(ServerEvent.local("resumed", report.resumed()))
        elif event.event == GAP_EVENT:
            room = event.payload.get("room") if isinstance(event.payload, dict) else None
            for payload in self.positions.resume_payloads([room] if isinstance(room, str) else []):
                await self._resume(socket, payload)

    def _take_token(self, event: ServerEvent) -> None:
        if self.token_event is None or event.event != self.token_event:
            return
        payload = event.payload
        token = payload if isinstance(payload, str) else payload.get("token") if isinstance(payload, dict) else None
        if isinstance(token, str):
            self.token = token

    def _emit(self, event: ServerEvent) -> None:
        self._listeners.emit(event)
        self._inbox.put(event)

    def _give_up(self, why: str) -> None:
        """No more connections: drop the queue, fail every pending request with ``closed``."""
        self._closed = True
        self._outbox.clear()
        self._pending.fail("closed", why)
        self._streams.fail("closed", why)


async def _first_done(opened: Coroutine[Any, Any, Any], task: asyncio.Task[None]) -> bool:
    """Whether ``opened`` finished first (``True``) or ``task`` did (``False``)."""
    waiter = asyncio.ensure_future(opened)
    try:
        done, _ = await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    return waiter in done
