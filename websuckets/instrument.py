"""``Instrument``: what an observability add-on may plug into an app, decided once at start-up.

Metrics (`websuckets.metrics.Metrics`), tracing (`websuckets.tracing.Tracing`), health probes
(`websuckets.health.Health`) and the published schema (`websuckets.asyncapi.AsyncAPIPage`) are
instruments. Each is turned on in one line::

    app.add_instrument(Metrics())

and each hook below is consulted when the app starts: an instrument that adds nothing to a
command (``command_middleware`` returns ``None``) costs that command nothing, and an app without
instruments runs exactly the chains and connections it ran before.

Where the hooks sit:

- ``error_middleware(command, error_middleware)``: the outermost step, which maps exceptions to
  ``error`` events; an instrument may fuse its own work into it;
- ``command_middleware(command)``: a middleware right inside error mapping (before the rate
  limit and authentication), so that it sees every outcome of the command, errors included;
- ``http(connection, request)``: a ``process_request`` check run before every other one
  (static files, the connection cap, the origin check), for plain HTTP endpoints such as
  ``/metrics``; it must return ``None`` for a websocket upgrade;
- ``connection_class(base)``: a subclass of the server's connection class, to count frames
  and bytes;
- ``connection_ready(connection)``: each connection (a `Connection`: its ``socket`` and
  ``user``), once its connect hooks have run (whether they accepted it or not;
  ``connection.socket.state`` tells);
- ``frame_refused(connection, error)``: each frame answered with an error before it reached a
  command's chain (``unknown_command``, ``invalid_json``, ``invalid_command``,
  ``message_too_large``);
- ``unexpected_error(error, where)``: each exception that no middleware turned into an error
  for the client (a handler's bug, a failing hook), once it is logged; ``where`` says where in
  words (``"command 'chat send'"``, ``"a connect hook"``);
- ``startup(app)`` / ``shutdown(app)``: once the app has started (the dispatcher exists) and
  before it stops;
- ``install(app)``: at `WebSuckets.add_instrument` time, to register hooks.

The app collects ``connection_ready``, ``frame_refused`` and ``unexpected_error`` when it
starts, from the instruments that override them only
(``type(instrument).connection_ready is not Instrument.connection_ready``), and hands them to
the dispatcher (`websuckets.dispatcher.Listeners`): a hook nobody overrides is never called
(``http`` likewise joins the handshake checks only where overridden). They are plain functions,
called on the data path: keep them short, and never await in them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from .context import Connection, Middleware
from .exc import InternalError

if TYPE_CHECKING:
    from .backends.base import Backend
    from .connection import GuardedConnection
    from .dispatcher import Dispatcher
    from .routing import Command

__all__ = ["Connection", "Instrument", "InstrumentedApp"]


class InstrumentedApp(Protocol):
    """What an instrument sees of the app it is turned on in: `websuckets.WebSuckets` is one.

    Instruments sit below the app (the app imports them, never the other way round), so they
    name the app through this protocol.
    """

    @property
    def backend(self) -> Backend: ...

    @property
    def commands(self) -> Mapping[str, Command]: ...

    @property
    def server_events(self) -> Mapping[str, Any]: ...

    @property
    def welcome(self) -> bool: ...

    @property
    def started(self) -> bool: ...

    @property
    def dispatcher(self) -> Dispatcher: ...


class Instrument:
    """Base class of instruments: every hook does nothing; override the ones you need."""

    traces_envelopes: bool = False
    """Whether commands' ``traceparent`` must be read from the envelope into ``Context.traceparent``."""

    def install(self, app: InstrumentedApp) -> None:
        """Called by `WebSuckets.add_instrument`, before the app starts."""

    def error_middleware(self, command: Command, error_middleware: Middleware) -> Middleware:
        """The outermost middleware of ``command``'s chain: ``error_middleware`` (the app's), or one
        doing its work and more in the same step (a step less per message)."""
        return error_middleware

    def command_middleware(self, command: Command) -> Middleware | None:
        """The middleware to put in ``command``'s chain, right inside error mapping; ``None`` for none."""
        return None

    def http(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer a plain HTTP request, or ``None`` to pass it on (always for websocket upgrades)."""
        return None

    def connection_class(self, base: type[GuardedConnection]) -> type[GuardedConnection]:
        """The connection class to serve with: ``base`` or a subclass of it."""
        return base

    def connection_ready(self, connection: Connection) -> None:
        """A connection's connect hooks have run; its socket is closed (or closing) if they refused it."""

    def frame_refused(self, connection: Connection, error: InternalError) -> None:
        """A frame of ``connection`` was answered with ``error`` before reaching any command."""

    def unexpected_error(self, error: BaseException, where: str) -> None:
        """``error`` escaped every middleware (it is logged already); ``where`` says where, in words."""

    async def startup(self, app: InstrumentedApp) -> None:
        """Called once the app has started."""

    async def shutdown(self, app: InstrumentedApp) -> None:
        """Called when the app stops, before its backend closes."""
