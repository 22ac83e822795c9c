"""``User``: one connected client, and the user it is signed in as once verified.

A `User` holds no state of the app's beyond its own attributes: setting one goes to its
owner (the app's `websuckets.store.SessionStore`), which keeps the verified index and the
tokens in step and shares the attribute through a shared backend; the rooms it is in are
read from the backend's index, their one owner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from .identity import UserId

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection


class RoomIndex(Protocol):
    """Where a user's rooms are kept: the backend (or a shared backend's mirror)."""

    def rooms_of(self, client_id: UUID) -> frozenset[str]: ...


class UserOwner(Protocol):
    """What a user's attribute writes go to: the app's session store."""

    def set_attribute(self, user: User, name: str, value: Any) -> None: ...


class User:
    """One connected client, and the user it is signed in as once verified.

    Until verification only ``socket`` is set. Setting both ``id`` (the user's id, not
    the connection's) and ``token`` verifies the user; any other attribute may be stored
    too (``user.login = ...``). With a shared backend, attributes holding JSON values are
    readable on every process; names starting with ``_`` stay on this one.
    """

    socket: ServerConnection
    id: UserId | None
    token: str | None
    _owner: UserOwner
    _rooms_index: RoomIndex

    def __init__(self, socket: ServerConnection, owner: UserOwner, rooms: RoomIndex) -> None:
        object.__setattr__(self, "socket", socket)
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_rooms_index", rooms)
        object.__setattr__(self, "id", None)
        object.__setattr__(self, "token", None)

    @property
    def client_id(self) -> UUID:
        """The connection's id, the key of ``Session.online``: ``socket.id``."""
        return self.socket.id

    @property
    def verified(self) -> bool:
        """Whether both ``id`` and ``token`` are set."""
        return self.id is not None and self.token is not None

    @property
    def connected_here(self) -> bool:
        """Whether the client is connected to this process (``False`` for a client of another
        process, as a shared backend mirrors it)."""
        return True

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this client is in (`Session.join`)."""
        return self._rooms_index.rooms_of(self.client_id)

    def __setattr__(self, name: str, value: Any) -> None:
        self._owner.set_attribute(self, name, value)

    def __repr__(self) -> str:
        return f"<User client_id={self.client_id} id={self.id!r} verified={self.verified}>"
