"""``Presence``: who is connected, who is verified, who is in which room; no I/O.

Both backends keep one: `MemoryBackend` for this process's clients, `RedisBackend` as
the mirror of every process's clients (its own `User` objects beside `RemoteUser` ones).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:  # a cycle: session.User is what the index holds
    from .backends.base import UserId
    from .session import User

__all__ = ["Presence"]


class Presence:
    """Indexes of connected clients: by connection id, by verified user id, by room."""

    __slots__ = ("online", "rooms", "verified")

    def __init__(self) -> None:
        self.online: dict[UUID, User] = {}
        self.verified: dict[UserId, list[User]] = {}
        """Each user's verified connections, the latest verified last."""
        self.rooms: dict[str, dict[UUID, User]] = {}
        """Each room's members; a room exists while it has members."""

    def add(self, user: User) -> None:
        self.online[user.client_id] = user

    def remove(self, user: User) -> None:
        """Forget a connection, with its rooms (its verified entry is the store's to drop)."""
        if self.online.get(user.client_id) is user:
            del self.online[user.client_id]
        for room in list(user._rooms):
            self.leave(user, room)

    def add_verified(self, user: User) -> None:
        assert user.id is not None
        connections = self.verified.setdefault(user.id, [])
        if user in connections:
            connections.remove(user)
        connections.append(user)

    def remove_verified(self, user_id: UserId, user: User) -> None:
        connections = self.verified.get(user_id)
        if connections and user in connections:
            connections.remove(user)
            if not connections:
                del self.verified[user_id]

    def latest_verified(self, user_id: UserId) -> User | None:
        connections = self.verified.get(user_id)
        return connections[-1] if connections else None

    def join(self, user: User, room: str) -> None:
        self.rooms.setdefault(room, {})[user.client_id] = user
        user._rooms.add(room)

    def leave(self, user: User, room: str) -> None:
        user._rooms.discard(room)
        members = self.rooms.get(room)
        if members is not None and members.pop(user.client_id, None) is not None and not members:
            del self.rooms[room]

    def members(self, room: str) -> dict[UUID, User]:
        return self.rooms.get(room, {})

    def online_ids(self) -> Iterator[UUID]:
        return iter(list(self.online))

    def verified_ids(self) -> Iterator[UserId]:
        return iter(list(self.verified))
