"""``Context``: one command on its way through the middleware chain, and its `Connection`.

Both sit below routing and dispatching: a context names its command through `CommandInfo`
(what middlewares read of it), and its connection holds what the dispatcher decided for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from .envelope import Envelope, parse_envelope
from .events import ClientEvent

if TYPE_CHECKING:
    from dishka import AsyncContainer
    from pydantic import BaseModel
    from websockets.asyncio.server import ServerConnection

    from .store import SessionStore
    from .user import User


class CommandInfo(Protocol):
    """What a middleware may read of the command it runs for (a `websuckets.routing.Command`)."""

    @property
    def name(self) -> str:
        """The full name clients send as ``event``."""

    @property
    def handler(self) -> Callable[..., Awaitable[Any]]: ...

    @property
    def protected(self) -> bool:
        """Whether the command needs the token of a verified user."""

    @property
    def model(self) -> type[BaseModel] | None:
        """The pydantic model the payload is validated against, if the handler takes one."""


class Connection:
    """What websuckets keeps for one open connection."""

    __slots__ = (
        "buckets",
        "container",
        "parse",
        "report",
        "sessions",
        "socket",
        "streams",
        "task",
        "user",
        "uses_connection_token",
    )

    def __init__(
        self,
        socket: ServerConnection,
        user: User,
        container: AsyncContainer | None,
        sessions: SessionStore,
        report: Callable[[BaseException, str], None],
        uses_connection_token: bool,
    ) -> None:
        self.socket = socket
        self.user = user
        self.container = container
        """The connection's SESSION scope, or ``None`` when the app injects nothing."""
        self.sessions = sessions
        self.report = report
        """Logs an exception no middleware mapped (the dispatcher's, which tells the instruments too)."""
        self.uses_connection_token = uses_connection_token
        """Whether a protected command without a ``token`` uses the connection's (handshake authentication)."""
        self.buckets: dict[object, list[float]] = {}
        """The connection's rate-limit buckets (see `websuckets.middleware.RateLimit`)."""
        self.task: asyncio.Task[Any] | None = None
        """The task that reads the connection and runs its commands, once it does (see `websuckets.answer`)."""
        self.streams: dict[str | int, Any] | None = None
        self.parse: Callable[[str | bytes], Envelope] = parse_envelope
        """How the connection's frames become envelopes: its wire format's (set by the dispatcher)."""
        """The connection's running streams by ``id`` (`websuckets.streams.Stream`), once it started one."""

    def report_unexpected(self, exc: BaseException, ctx: Context) -> None:
        """Log an exception raised while handling ``ctx`` that no middleware mapped."""
        self.report(exc, f"command {ctx.event!r}")


class Context:
    """Everything about one command: what the client sent and where it is going.

    Middlewares read it and may write ``state``; the validation middleware sets ``model``.
    """

    __slots__ = (
        "_state",
        "command",
        "connection",
        "event",
        "id",
        "model",
        "payload",
        "socket",
        "token",
        "traceparent",
        "user",
    )

    def __init__(
        self,
        connection: Connection,
        command: CommandInfo,
        payload: Any,
        token: str | None,
        id: str | int | None,
        traceparent: str | None = None,
    ) -> None:
        self.connection = connection
        self.socket: ServerConnection = connection.socket
        self.user: User = connection.user
        self.command = command
        self.event: str = command.name
        self.payload = payload
        """The command's ``payload`` as parsed JSON, or `MISSING`."""
        self.token = token
        self.id = id
        self.traceparent = traceparent
        """The W3C ``traceparent`` the client sent, read only when an instrument traces commands."""
        self.model: BaseModel | None = None
        """The payload validated against the handler's model, once validation has run."""
        self._state: dict[str, Any] | None = None

    @property
    def state(self) -> dict[str, Any]:
        """Free for middlewares to share data along the chain of this one command."""
        if self._state is None:
            self._state = {}
        return self._state

    async def reply(self, event: str, payload: Any = None) -> None:
        """Send an event to this client, tagged with the command's ``id`` when it has one."""
        await self.socket.send(ClientEvent(event, payload, id=self.id))

    def __repr__(self) -> str:
        return f"<Context event={self.event!r} id={self.id!r} client_id={self.socket.id}>"


CallNext = Callable[[Context], Awaitable[None]]
"""What a middleware calls to pass the command on: the rest of the chain."""

Middleware = Callable[[Context, CallNext], Awaitable[None]]
"""``async def middleware(ctx: Context, call_next: CallNext) -> None``."""
