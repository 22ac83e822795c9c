"""The data path: a connection's frames, each to an envelope, its command's chain, a reply.

`Dispatcher.serve` is the ``websockets`` connection handler; everything it runs was
decided when the app started.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.frames import CloseCode

from .connection import close_draining
from .context import CallNext, Connection, Context
from .envelope import bounded, error_event, parse_envelope, parse_traced_envelope
from .events import ClientEvent
from .exc import InternalError, InvalidCommand, InvalidJSON, MessageTooLarge, UnknownCommand
from .handlers import CallPlan
from .routing import Command
from .session import enter_connection
from .store import SessionStore
from .streams import cancel_all
from .user import User

if TYPE_CHECKING:  # dishka is imported only by apps that inject (see websuckets.handlers)
    from dishka import AsyncContainer

logger = logging.getLogger("websuckets.dispatcher")

YIELD_EVERY = 16
"""A connection hands the event loop to others at least once every this many frames..."""
TIME_SLICE = 0.002
"""...or once it has spent this many seconds on frames since it last did, whichever comes first.

``websockets`` hands over every frame of one socket read at once; without these yields a client
pipelining small commands would hold the loop for the whole read (100 ms and more). Waiting for
the client's next frame hands the loop over too: a connection whose next frame has not arrived
yet counts from zero again and never yields on top of that wait.
"""


class Route(NamedTuple):
    """A command and the middleware chain that ends in its handler, built when the app started."""

    command: Command
    chain: CallNext
    request_chain: CallNext
    """The chain for the command sent with an ``id``: ``chain``, or around it `websuckets.answer.answer`."""


class Listeners(NamedTuple):
    """What the dispatcher tells the app's instruments, fixed when the app starts.

    Each tuple holds only the hooks that an instrument overrides (see
    `websuckets.instrument.Instrument`): with no instrument listening, each is empty and costs
    an empty loop where it is told, never once per command.
    """

    connection_ready: tuple[Callable[[Connection], None], ...] = ()
    """Told of every connection once its connect hooks have run (accepted or refused)."""
    frame_refused: tuple[Callable[[Connection, InternalError], None], ...] = ()
    """Told of every frame answered with an error before a command's chain (unknown command, invalid JSON...)."""
    unexpected_error: tuple[Callable[[BaseException, str], None], ...] = ()
    """Told of every exception that no middleware turned into an error for the client, and where it happened."""


NO_LISTENERS = Listeners()
"""An app without instruments: no hook to call."""

AdoptHandshake = Callable[[ServerConnection, User], Awaitable[bool]]
"""Verifies a new connection's `User` with the token of its handshake; ``False`` refuses the connection.

See `websuckets.handshake_auth.HandshakeTokens.adopt`.
"""


class Dispatcher:
    """Runs connections for a started app: routing table, session store, scopes, hooks."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        sessions: SessionStore,
        container: AsyncContainer | None,
        on_connect: Sequence[CallPlan],
        on_disconnect: Sequence[CallPlan],
        max_message_size: int | None,
        welcome: bool = False,
        *,
        trace: bool = False,
        adopt_handshake: AdoptHandshake | None = None,
        listeners: Listeners = NO_LISTENERS,
    ) -> None:
        self.routes = routes
        self.traces = trace
        self.parse = parse_traced_envelope if trace else parse_envelope
        """How frames become envelopes: with their ``traceparent`` only when an instrument traces."""
        self.welcome = welcome
        self.adopt_handshake = adopt_handshake
        """Set when the app authenticates at the handshake; ``None`` costs a connection nothing."""
        self.connection_tokens = adopt_handshake is not None
        """Whether a protected command without a ``token`` uses its connection's token (handshake auth)."""
        self.sessions = sessions
        self.container = container
        if container is not None:
            from dishka import Scope  # an app with a container has imported dishka already

            self.session_scope = Scope.SESSION
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.max_message_size = max_message_size
        self.listeners = listeners
        """The instruments' hooks the dispatcher calls (see `Listeners`)."""
        self.in_flight = 0
        """Commands being handled right now, over every connection."""
        self.open_connections = 0
        """Connections being served right now."""
        self._idle_waiters: list[asyncio.Future[None]] = []

    async def serve(self, socket: ServerConnection) -> None:
        """Serve one connection until it closes; a failure outside any command is reported, then 1011.

        One coroutine from the connection to `_run` (not one a step): each frame of an idle
        connection's stack is about 300 bytes held for as long as it stays connected.
        """
        enter_connection(self.sessions)
        self.open_connections += 1
        try:
            user = self.sessions.connect(socket)
            try:
                if self.adopt_handshake is not None and not await self.adopt_handshake(socket, user):
                    logger.info("client %s refused: its handshake token is not valid (any more)", socket.id)
                    await close_draining(socket, CloseCode.POLICY_VIOLATION, "authentication required")
                elif self.container is None:
                    await self._run(self.connection(socket, user, None))
                else:
                    context = {ServerConnection: socket, User: user}
                    async with self.container(context=context, scope=self.session_scope) as session:
                        await self._run(self.connection(socket, user, session))
            finally:
                self.sessions.disconnect(user)
        except ConnectionClosed:
            pass  # the client left while we were answering it
        except Exception as exc:  # the backend, a SESSION finalizer, or websuckets itself failed
            self.report_unexpected(exc, "a connection")
            await close_draining(socket, CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            self.open_connections -= 1

    def connection(self, socket: ServerConnection, user: User, container: AsyncContainer | None) -> Connection:
        """What `dispatch` needs of ``socket``'s connection: ``container`` is its SESSION scope, if any."""
        connection = Connection(socket, user, container, self.sessions, self.report_unexpected, self.connection_tokens)
        codec = getattr(socket, "codec", None)  # a MessagePack connection's format (websuckets.negotiation)
        connection.parse = self.parse if codec is None else codec.parse_traced if self.traces else codec.parse
        return connection

    async def _run(self, connection: Connection) -> None:
        """Connect hooks, then every frame in order, then disconnect hooks."""
        accepted = await self._connect(connection)
        for ready in self.listeners.connection_ready:
            ready(connection)
        if not accepted:
            return
        if self.welcome:
            await connection.socket.send(ClientEvent("welcome", {"client_id": str(connection.socket.id)}))
        socket = connection.socket
        connection.task = asyncio.current_task()  # the task that runs every command of the connection
        recv, queued = socket.recv, socket.recv_messages.frames
        clock = time.perf_counter
        frames, started = 0, 0.0
        try:
            while True:
                try:
                    frame = await recv()
                except ConnectionClosedOK:  # as ``async for frame in socket`` ends
                    break
                if not frames:
                    started = clock()
                self.in_flight += 1
                try:
                    await self.dispatch(connection, frame)
                finally:
                    self.in_flight -= 1
                    if not self.in_flight and self._idle_waiters:
                        self._wake_idle_waiters()
                if not queued:  # the next recv waits for the client: the loop runs the others meanwhile
                    frames = 0
                    continue
                frames += 1
                if frames >= YIELD_EVERY or clock() - started >= TIME_SLICE:  # fairness: let other connections run
                    await asyncio.sleep(0)
                    frames = 0
        finally:
            if connection.streams:  # closed first: their REQUEST scopes end before the SESSION scope
                await cancel_all(connection.streams)
            await self._run_hooks(self.on_disconnect, connection)

    def dispatch(self, connection: Connection, frame: str | bytes) -> Awaitable[None]:
        """Route one frame: errors before routing are answered here, the rest by the chain.

        Returns what to await: the first step of the command's chain, called (no coroutine of
        the dispatcher's own per command), or the answer to a frame refused before routing.
        """
        limit = self.max_message_size
        if limit is not None and len(frame) * 4 > limit and _too_large(frame, limit):  # UTF-8: 4 bytes at most
            return self._refuse(connection, MessageTooLarge(f"the message is larger than {limit} bytes"))
        try:
            envelope = connection.parse(frame)
        except (InvalidJSON, InvalidCommand) as error:
            return self._refuse(connection, error, error.event, error.id)
        route = self.routes.get(envelope.event)
        if route is None:
            unknown = UnknownCommand(f"no command is named {bounded(envelope.event)!r}")
            return self._refuse(connection, unknown, envelope.event, envelope.id)
        chain = route.chain if envelope.id is None else route.request_chain  # a request: see websuckets.answer
        return chain(
            Context(connection, route.command, envelope.payload, envelope.token, envelope.id, envelope.traceparent)
        )

    async def _refuse(
        self, connection: Connection, error: InternalError, event: str | None = None, id: str | int | None = None
    ) -> None:
        """Answer a frame that never reached a command's chain."""
        for refused in self.listeners.frame_refused:
            refused(connection, error)
        logger.debug("frame from %s refused: %s", connection.socket.id, error.name)
        await connection.socket.send(error_event(error, event, id))

    async def wait_idle(self, limit: float) -> bool:
        """Wait until no command is being handled; ``False`` if ``limit`` seconds ran out first."""
        if not self.in_flight:
            return True
        idle = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(idle)
        try:
            await asyncio.wait_for(idle, limit)
        except TimeoutError:
            return False
        finally:
            if idle in self._idle_waiters:
                self._idle_waiters.remove(idle)
        return True

    def _wake_idle_waiters(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def report_unexpected(self, exc: BaseException, where: str) -> None:
        """Log an exception that no middleware turned into an error for the client, and tell the instruments."""
        logger.error("unexpected error in %s", where, exc_info=exc)
        for listener in self.listeners.unexpected_error:
            listener(exc, where)

    async def _connect(self, connection: Connection) -> bool:
        """Run the connect hooks; an exception in one refuses the connection."""
        try:
            for plan in self.on_connect:
                await _call_hook(plan, connection)
        except InternalError as error:
            await connection.socket.send(error_event(error))
            await close_draining(connection.socket, CloseCode.POLICY_VIOLATION, "connection refused")
            return False
        except Exception as exc:
            self.report_unexpected(exc, "a connect hook")
            await close_draining(connection.socket, CloseCode.INTERNAL_ERROR, "internal error")
            return False
        return True

    async def _run_hooks(self, plans: Sequence[CallPlan], connection: Connection) -> None:
        for plan in plans:
            try:
                await _call_hook(plan, connection)
            except Exception as exc:
                self.report_unexpected(exc, "a disconnect hook")


async def _call_hook(plan: CallPlan, connection: Connection) -> Any:
    if not plan.needs_container:
        return await plan.invoke(connection)
    assert connection.container is not None, "checked when the app started"
    return await plan.call_in_scope(connection, connection.container)


def _too_large(frame: str | bytes, limit: int) -> bool:
    """Whether a frame is over ``limit`` bytes: text is encoded to count."""
    size = len(frame.encode(errors="surrogatepass")) if isinstance(frame, str) else len(frame)
    return size > limit
