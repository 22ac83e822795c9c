"""``Context``: one command on its way through the middleware chain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .events import ClientEvent

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from .dispatcher import Connection
    from .routing import Command
    from .user import User

__all__ = ["CallNext", "Context", "Middleware"]


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
        command: Command,
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
