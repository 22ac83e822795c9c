"""``WebSuckets``: the application, its configuration and its server lifecycle."""

from __future__ import annotations

import logging
import os
import signal
import ssl as ssl_module
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as websockets_serve

from . import negotiation, serving, startup
from ._logging import QuietFrames, quiet_frames
from .backends.base import Backend
from .backends.memory import MemoryBackend
from .context import Middleware
from .dispatcher import Dispatcher
from .exc import AppStateError, DuplicateCommand
from .handlers import CallPlan, Handler, HandlerKind, analyse
from .handshake import Check, Handshake, limit_connections
from .handshake_auth import HandshakeAuth, HandshakeTokens
from .history import History, HistoryRules
from .identity import UserId
from .instrument import Instrument
from .middleware import CommandTimeouts, RateLimit, authenticate, map_errors, validate_payload
from .origin import Origins, check_origin
from .routing import Command, CommandGroup
from .session import activate, deactivate
from .static import StaticFiles
from .store import SessionStore
from .wire import CANCEL_EVENT, GAP_EVENT, MAX_STREAMS, POSITION_EVENT

if TYPE_CHECKING:  # dishka is imported only by apps that inject (see websuckets.handlers)
    from dishka import AsyncContainer

logger = logging.getLogger("websuckets")

H = TypeVar("H", bound=Handler)

DAY = 24 * 60 * 60

DEFAULT_RATE_LIMIT = RateLimit(rate=100.0, burst=200.0)
"""100 commands a second per connection, 200 at once: far above what a person or a UI sends."""


class WebSuckets:
    """A websuckets application.

    ``await app(host, port)`` serves it until SIGINT or SIGTERM. To embed it in a larger
    asyncio program, start it with ``async with app:`` and serve with ``app.serve(...)``.

    Args:
        container: a dishka ``AsyncContainer`` for handlers with ``FromDishka`` parameters.
            The app closes it when it stops.
        backend: where sessions and tokens live; `MemoryBackend` by default.
        token_ttl: seconds a token stays valid after it is set on ``User.token``.
        max_message_size: the largest frame, in bytes, that reaches a handler. A larger one
            gets a ``message_too_large`` error; one over four times this closes the
            connection with code 1009. ``None`` for no limit.
        shutdown_timeout: seconds to wait for in-flight commands when the server stops.
        error_middleware: the outermost middleware, mapping exceptions to error events.
        auth_middleware: the middleware that checks tokens of protected commands.
        validation_middleware: the innermost middleware, validating payloads into models.
        welcome: send each client ``{"event": "welcome", "payload": {"client_id": "<socket.id>"}}``
            once its connect hooks have accepted it, so that it knows its own id (the key
            of ``Session.online`` that others address it by).
        rate_limit: each connection's `RateLimit` (100 commands/s, bursts of 200); ``None`` for none.
        command_timeouts: seconds a handler may run before it is cancelled and its client gets
            ``command_timeout``: a number for every command, or `CommandTimeouts` with limits
            per command. ``None`` (the default) for no limit.
        origins: the browser origins allowed to connect: ``None`` (the default) for the same
            origin as the server's host, a list of origins, or ``"*"`` for any.
        max_connections: connections served at once by this process; more are refused at the
            handshake with HTTP 503 and ``Retry-After``. ``None`` for no limit.
        open_timeout: seconds a client has to complete the opening handshake.
        ping_interval: seconds between keepalive pings; ``None`` for no pings.
        ping_timeout: seconds a pong may be late before the connection is dropped as dead.
        send_timeout: seconds a send may wait for a client that reads nothing before the
            connection is closed with 1013; ``None`` to wait forever.
        compression: ``"deflate"`` for permessage-deflate, ``None`` (the default) for none.
        handshake_auth: a `websuckets.handshake_auth.HandshakeAuth` to authenticate clients
            with a token at the handshake (a header, the subprotocol, a cookie or the query
            string), before their first command; ``None`` (the default) for none.
        handshake_checks: ``process_request`` hooks run on every handshake after the built-in
            checks (connection cap, origin, ``handshake_auth``), returning a response to refuse it.
        history: the rooms that keep their last messages for clients that reconnect, by name
            or fnmatch pattern (``{"lobby": History(size=100), "chat:*": History(ttl=600)}``):
            their messages carry a position, and the ``websuckets resume`` command replays what
            a client missed (see the "Reconnect and recovery" guide). ``None`` for none.
        max_streams: streams (commands whose handler is an async generator) one connection may
            run at once; one more is refused with ``too_many_streams``. See the "Streaming replies" guide.
    """

    def __init__(
        self,
        *,
        container: AsyncContainer | None = None,
        backend: Backend | None = None,
        token_ttl: float = DAY,
        max_message_size: int | None = 2**20,
        shutdown_timeout: float = 10.0,
        error_middleware: Middleware = map_errors,
        auth_middleware: Middleware = authenticate,
        validation_middleware: Middleware = validate_payload,
        welcome: bool = False,
        rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
        command_timeouts: CommandTimeouts | float | None = None,
        origins: Origins = None,
        max_connections: int | None = 10_000,
        open_timeout: float | None = 5.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 15.0,
        send_timeout: float | None = 10.0,
        compression: str | None = None,
        handshake_auth: HandshakeAuth | None = None,
        handshake_checks: Sequence[Check] = (),
        history: Mapping[str, History] | None = None,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        self.container = container
        self.backend = backend if backend is not None else MemoryBackend()
        self.token_ttl = token_ttl
        self.max_message_size = max_message_size
        self.shutdown_timeout = shutdown_timeout
        self.error_middleware = error_middleware
        self.auth_middleware = auth_middleware
        self.validation_middleware = validation_middleware
        self.welcome = welcome
        self.rate_limit = rate_limit
        self.command_timeouts = (
            command_timeouts if not isinstance(command_timeouts, int | float) else CommandTimeouts(command_timeouts)
        )
        self.origins = origins
        self.max_connections = max_connections
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.send_timeout = send_timeout
        self.compression = compression
        self.handshake_auth = handshake_auth
        self.handshake_checks = list(handshake_checks)
        self.middlewares: list[Middleware] = []
        self.commands: dict[str, Command] = {}
        self._groups: list[CommandGroup] = []
        self.connect_hooks: list[CallPlan] = []
        self.disconnect_hooks: list[CallPlan] = []
        self._dispatcher: Dispatcher | None = None
        self._handshake_tokens: HandshakeTokens | None = None
        self.static: StaticFiles | None = None
        self.instruments: list[Instrument] = []
        self.server_events: dict[str, Any] = {}
        """Events the server pushes, by name, with the type of their payload (see `server_event`)."""
        if max_streams < 1:
            raise ValueError("max_streams must be at least 1")
        self.max_streams = max_streams
        self.history = HistoryRules(history)
        if self.history.active:
            from .resume import GapPayload, PositionPayload, resume_commands  # its models: only with history

            self.include_command_group(resume_commands())
            self.server_event(POSITION_EVENT, PositionPayload)
            self.server_event(GAP_EVENT, GapPayload)

    # configuration, before the app starts

    def include_command_group(self, group: CommandGroup) -> None:
        """Add the group's commands, and any it registers later, to the app."""
        self._check_not_started("include a command group")
        for command in group:
            self._add_command(command)
        group.subscribe(self._add_command)
        self._groups.append(group)

    def add_middleware(self, middleware: Middleware) -> None:
        """Run ``middleware`` around every command, after authentication."""
        self._check_not_started("add a middleware")
        self.middlewares.append(middleware)

    def on_connect(self, hook: H) -> H:
        """Run ``hook`` when a client connects (it may take the socket, the User and services)."""
        self._check_not_started("add a connect hook")
        self.connect_hooks.append(analyse(hook, HandlerKind.HOOK))
        return hook

    def on_disconnect(self, hook: H) -> H:
        """Run ``hook`` when a client has left, before its SESSION scope closes."""
        self._check_not_started("add a disconnect hook")
        self.disconnect_hooks.append(analyse(hook, HandlerKind.HOOK))
        return hook

    def add_static(self, url_path: str, path: str | os.PathLike[str]) -> None:
        """Serve a file (at ``url_path``) or a directory (under it) over plain HTTP on the server's port.

        Once a static route exists, ``/websuckets.js`` serves the browser client too. Websocket
        connections go to the app on any path.
        """
        self._check_not_started("add a static route")
        if self.static is None:
            self.static = StaticFiles()
        self.static.add(url_path, path)

    def add_instrument(self, instrument: Instrument) -> None:
        """Turn on an instrument: `websuckets.metrics.Metrics`, `websuckets.tracing.Tracing`,
        `websuckets.health.Health`, `websuckets.asyncapi.AsyncAPIPage`, or your own."""
        self._check_not_started("add an instrument")
        self.instruments.append(instrument)
        instrument.install(self)

    def server_event(self, name: str, payload: Any) -> None:
        """Declare an event the server sends (``ClientEvent(name, ...)``) and the type of its payload.

        ``payload`` is a pydantic model or any type pydantic can describe (``list[str]``); ``None``
        for a ``null`` payload, ``typing.Any`` for any. Declared events appear in `asyncapi` and the TypeScript
        declarations; declaring none changes nothing at run time.
        """
        self.server_events[name] = payload

    def asyncapi(self, **info: Any) -> dict[str, Any]:
        """The app's AsyncAPI 3.0 document, as a dict; ``info`` overrides its ``info`` object
        (``title``, ``version``, ``description``). See `websuckets.asyncapi.document`."""
        from .asyncapi import document  # the generator is only needed here

        return document(self, **info)

    def _add_command(self, command: Command) -> None:
        self._check_not_started("register a command")
        if command.name in self.commands:
            raise DuplicateCommand(command.name)
        self.commands[command.name] = command
        if command.plan.streams and CANCEL_EVENT not in self.commands:
            from .streams import stream_commands  # the first stream brings the built-in cancel command

            self.include_command_group(stream_commands())

    def _check_not_started(self, action: str) -> None:
        if self._dispatcher is not None:
            raise AppStateError(f"cannot {action} once the app has started")

    # lifecycle

    @property
    def started(self) -> bool:
        return self._dispatcher is not None

    async def __aenter__(self) -> Self:
        """Start the app: build every chain, start the backend. Serve with `serve`."""
        self._check_not_started("start the app")
        injects = startup.check_container(self)
        routes = {name: startup.route_for(self, command) for name, command in self.commands.items()}
        sessions = SessionStore(self.backend, self.token_ttl)
        startup.check_history(self)
        self.backend.bind(sessions, self.history)
        startup.settle_malloc()
        await self.backend.start()
        tokens = self._handshake_tokens = None if self.handshake_auth is None else self.handshake_auth.bind(sessions)
        self._dispatcher = Dispatcher(
            routes,
            sessions,
            self.container if injects else None,  # no SESSION scope per connection when nothing injects
            self.connect_hooks,
            self.disconnect_hooks,
            self.max_message_size,
            self.welcome,
            trace=any(instrument.traces_envelopes for instrument in self.instruments),
            adopt_handshake=None if tokens is None else tokens.adopt,
            listeners=startup.listeners(self.instruments),
        )
        activate(sessions)
        for group in self._groups:
            group.seal()
        for instrument in self.instruments:
            await instrument.startup(self)
        logger.info("app started with %d commands", len(routes))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the app: close the backend and the container (running APP finalizers)."""
        if self._dispatcher is not None:
            for instrument in reversed(self.instruments):
                await instrument.shutdown(self)
        dispatcher, self._dispatcher = self._dispatcher, None
        self._handshake_tokens = None
        if dispatcher is not None:
            deactivate(dispatcher.sessions)
            logger.info("app stopped")
        try:
            await self.backend.close()
        finally:
            if self.container is not None:
                await self.container.close()

    def issue_token(self, user_id: UserId) -> str:
        """A new token for the user ``user_id``, valid for ``token_ttl`` seconds on every process.

        For tokens made outside a connection: an HTTP sign-in beside the app, say, whose
        clients then present the token at the handshake (``handshake_auth``) or in commands.
        Inside a handler, set ``User.token`` instead. Only while the app is started.
        """
        return self.dispatcher.sessions.issue(user_id)

    @property
    def dispatcher(self) -> Dispatcher:
        """The running dispatcher; only while the app is started."""
        if self._dispatcher is None:
            raise AppStateError("the app is not started: use 'async with app:' or 'await app(host, port)'")
        return self._dispatcher

    async def handler(self, socket: ServerConnection) -> None:
        """The ``websockets`` connection handler, for ``websockets.asyncio.server.serve(app.handler, ...)``."""
        await self.dispatcher.serve(socket)

    @property
    def protocol_max_size(self) -> int | None:
        """The frame size over which the protocol closes the connection (1009): four times ``max_message_size``."""
        return None if self.max_message_size is None else 4 * self.max_message_size

    def serve(self, host: str | None = "localhost", port: int | None = 9000, **kwargs: Any) -> Server:
        """A ``websockets`` server for this started app; use it as ``async with app.serve(...) as server:``.

        Extra keyword arguments go to `websockets.asyncio.server.serve` (``ssl=`` for TLS), over
        the app's settings. A ``process_request`` you pass runs after the app's handshake
        checks (connection cap, origin, ``handshake_auth``, ``handshake_checks``), in place of
        the static routes (`add_static`); ``origins=`` replaces the app's ``origins``. Unless
        you pass ``subprotocols=``, the server negotiates the wire format (`websuckets.negotiation`:
        ``websuckets.v1.json``, ``websuckets.v1.msgpack``, HTTP 400 for only unknown versions) and
        otherwise selects the ``websuckets`` subprotocol when a client offers it (browsers that
        send a token as a subprotocol need an answer).
        """
        started = self._dispatcher  # its own handler when started: one coroutine frame less a connection
        handler = self.handler if started is None else started.serve
        return websockets_serve(handler, host, port, **self._server_options(**kwargs))

    def _server_options(self, **kwargs: Any) -> dict[str, Any]:
        """The app's settings for a ``websockets`` server, under ``kwargs`` (`serve`; `TestClient` in memory)."""
        kwargs.setdefault("max_size", self.protocol_max_size)
        negotiate = "subprotocols" not in kwargs
        origins = kwargs.pop("origins", self.origins)
        kwargs["process_request"] = self.handshake(origins, kwargs.get("process_request"), negotiate=negotiate)
        kwargs.setdefault("logger", quiet_frames(logging.getLogger("websuckets.server")))
        kwargs.setdefault("open_timeout", self.open_timeout)
        kwargs.setdefault("ping_interval", self.ping_interval)
        kwargs.setdefault("ping_timeout", self.ping_timeout)
        kwargs.setdefault("compression", self.compression)
        kwargs.setdefault("create_connection", serving.connection_class(self.send_timeout, self.instruments))
        if negotiate:
            kwargs.setdefault("select_subprotocol", negotiation.select_subprotocol)
        return kwargs

    def handshake(self, origins: Origins, process_request: Check | None = None, *, negotiate: bool = True) -> Handshake:
        """The ``process_request`` hook of the app's server: static files, then every handshake check.

        With ``negotiate``, a client offering only unknown versions of the protocol is refused (400).
        """
        checks: list[Check] = [i.http for i in self.instruments if type(i).http is not Instrument.http]
        if process_request is not None:
            pass
        elif self.static is not None:
            checks.append(self.static)
        cap = None
        if self.max_connections is not None:
            dispatcher = self.dispatcher
            cap = limit_connections(lambda: dispatcher.open_connections, self.max_connections)
            checks.append(cap)  # first: a full server refuses before any other work
        if origins != "*":
            checks.append(check_origin(None if origins is None else [o for o in origins if o is not None]))
        if negotiate:
            checks.append(negotiation.check_subprotocols)
        if self._handshake_tokens is not None:
            checks.append(self._handshake_tokens)
        checks += self.handshake_checks
        if process_request is not None:
            checks.append(process_request)
        if cap is not None and (self._handshake_tokens is not None or self.handshake_checks or process_request):
            # Checks after the cap may wait (a token looked up in Redis), and the handshakes
            # waiting meanwhile all passed the cap: count again once nothing is left to wait for,
            # right before the connection starts (nothing yields between the two).
            checks.append(cap)
        return Handshake(checks)

    async def shutdown(self, server: Server) -> None:
        """Stop gracefully: stop accepting, let in-flight commands finish, close connections with 1001.

        Commands get ``shutdown_timeout`` seconds to finish; those still running then are
        cancelled once connections have had as long again to close.
        """
        await serving.stop_gracefully(server, self.dispatcher, self.shutdown_timeout)

    async def __call__(self, host: str, port: int, *, ssl: ssl_module.SSLContext | None = None) -> None:
        """Serve on ``host:port`` until SIGINT or SIGTERM, then shut down gracefully; over TLS with ``ssl``.

        A backend that gives up (``RedisBackend(exit_after=...)``) shuts it down the same way (connections
        closed with 1001), then its error (`BackendUnavailable`) is raised.

        A port already in use (or an address that is not this machine's) raises its `OSError`
        before the app starts: no hook runs and nothing is logged as started and stopped.
        """
        await serving.check_bindable(host, port)
        secure = "s" if ssl is not None else ""
        # the printed line says where it serves: websockets' own "server listening on" would repeat it
        quiet = QuietFrames(logging.getLogger("websuckets.server"), skip={"server listening on %s"})
        async with self, self.serve(host, port, ssl=ssl, logger=quiet) as server:
            address = serving.address(server, host, "ws" + secure)
            print(f"websuckets: serving on {address} (press Ctrl+C to stop)", flush=True)
            if self.static is not None:
                print(f"websuckets: open {serving.address(server, host, 'http' + secure)}/ in a browser", flush=True)
            stop = serving.wait_for_signal((signal.SIGINT, signal.SIGTERM))
            failure = await serving.stopped_or_failed(stop, self.backend.failure())
            logger.info("shutting down" if failure is None else "shutting down: the backend gave up")
            await self.shutdown(server)
            if failure is not None:
                raise failure
