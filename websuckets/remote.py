"""``RemoteUser`` and ``RemoteSocket``: a client connected to another process, as this one sees it.

A shared backend's mirror holds one `RemoteUser` for each client of the other processes.
It reads like a `User` (``id``, ``verified``, ``rooms``, the attributes its own process
shared) and its ``socket`` sends through the backend to the process that holds the
connection. It is read-only: only the process a client is connected to writes its user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn
from uuid import UUID

from websockets.exceptions import ConnectionClosedError
from websockets.protocol import State

from .exc import RemoteUserReadOnly
from .identity import UserId
from .user import RoomIndex, User

__all__ = ["RemoteSocket", "RemoteUser"]

_OWN = frozenset(("socket", "id", "token", "_rooms_index"))

Deliver = Callable[[UUID, str, "str | bytes"], Awaitable[None]]
"""``deliver(client_id, worker, message)``: what a remote socket's ``send`` calls."""


class RemoteSocket:
    """The part of ``ServerConnection`` that makes sense for a connection of another process."""

    __slots__ = ("_deliver", "gone", "id", "remote_address", "worker")

    def __init__(self, client_id: UUID, worker: str, remote_address: Any, deliver: Deliver) -> None:
        self.id = client_id
        self.worker = worker
        """The id of the process holding the connection."""
        self.remote_address = remote_address
        self.gone = False
        """Set once the mirror has seen the client leave."""
        self._deliver = deliver

    @property
    def state(self) -> State:
        return State.CLOSED if self.gone else State.OPEN

    async def send(self, message: str | bytes, text: bool | None = None) -> None:
        """Send through the owning process; raises ``ConnectionClosed`` if the client has gone."""
        if self.gone:
            raise ConnectionClosedError(None, None)
        await self._deliver(self.id, self.worker, message)

    def __repr__(self) -> str:
        return f"<RemoteSocket id={self.id} worker={self.worker}>"


class RemoteUser(User):
    """A client connected to another process: read-only, from the backend's mirror."""

    socket: RemoteSocket  # type: ignore[assignment]  # a remote connection, not a ServerConnection

    @property
    def connected_here(self) -> bool:
        return False

    def __init__(
        self, socket: RemoteSocket, user_id: UserId | None, attributes: Mapping[str, Any], rooms: RoomIndex
    ) -> None:
        object.__setattr__(self, "socket", socket)
        object.__setattr__(self, "id", user_id)
        object.__setattr__(self, "token", None)  # tokens never leave the process that holds them
        object.__setattr__(self, "_rooms_index", rooms)
        for name, value in attributes.items():
            object.__setattr__(self, name, value)

    @property
    def verified(self) -> bool:
        """Whether its own process has verified it (``id`` is set only then)."""
        return self.id is not None

    def _refresh(self, user_id: UserId | None, attributes: Mapping[str, Any]) -> None:
        """Take the state its own process published (the backend's call, bypassing read-only)."""
        object.__setattr__(self, "id", user_id)
        for name in [name for name in vars(self) if name not in _OWN and name not in attributes]:
            object.__delattr__(self, name)
        for name, value in attributes.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise RemoteUserReadOnly(self.client_id, self.socket.worker)

    def __repr__(self) -> str:
        return f"<RemoteUser client_id={self.client_id} id={self.id!r} worker={self.socket.worker}>"
