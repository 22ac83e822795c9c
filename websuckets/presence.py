"""``Presence``: who is connected, who is verified, who is in which room; no I/O.

Both backends keep one: `MemoryBackend` for this process's clients, `RedisBackend` as
the mirror of every process's clients (its own `User` objects beside `RemoteUser` ones).
It is the one owner of room membership, both ways: a room's members and a client's rooms.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING
from uuid import UUID

from .identity import UserId

if TYPE_CHECKING:
    from .user import User


class Presence:
    """Indexes of connected clients: by connection id, by verified user id, by room."""

    __slots__ = ("here", "memberships", "online", "rooms", "verified")

    def __init__(self) -> None:
        self.online: dict[UUID, User] = {}
        self.verified: dict[UserId, list[User]] = {}
        """Each user's verified connections, the latest verified last."""
        self.rooms: dict[str, dict[UUID, User]] = {}
        """Each room's members; a room exists while it has members."""
        self.memberships: dict[UUID, set[str]] = {}
        """Each client's rooms, by connection id; a client is here while it is in a room."""
        self.here: dict[str, int] = {}
        """Each room's number of members connected to this process (not another's `RemoteUser`)."""

    def add(self, user: User) -> None:
        self.online[user.client_id] = user

    def remove(self, user: User) -> None:
        """Forget a connection, with its rooms (its verified entry is the store's to drop)."""
        if self.online.get(user.client_id) is user:
            del self.online[user.client_id]
        for room in self.memberships.pop(user.client_id, ()):
            self._drop_member(user.client_id, room)

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
        members = self.rooms.setdefault(room, {})
        self._count_here(room, members.get(user.client_id), -1)
        members[user.client_id] = user
        self._count_here(room, user, 1)
        self.memberships.setdefault(user.client_id, set()).add(room)

    def leave(self, user: User, room: str) -> None:
        rooms = self.memberships.get(user.client_id)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self.memberships[user.client_id]
        self._drop_member(user.client_id, room)

    def _drop_member(self, client_id: UUID, room: str) -> None:
        members = self.rooms.get(room)
        if members is None:
            return
        self._count_here(room, members.pop(client_id, None), -1)
        if not members:
            del self.rooms[room]

    def _count_here(self, room: str, user: User | None, change: int) -> None:
        if user is None or not user.connected_here:
            return
        count = self.here.get(room, 0) + change
        if count:
            self.here[room] = count
        else:
            del self.here[room]

    def has_members_here(self, room: str) -> bool:
        """Whether a member of ``room`` is connected to this process."""
        return room in self.here

    def rooms_of(self, client_id: UUID) -> frozenset[str]:
        return frozenset(self.memberships.get(client_id, ()))

    def members(self, room: str) -> dict[UUID, User]:
        return self.rooms.get(room, {})

    def online_ids(self) -> Iterator[UUID]:
        return iter(list(self.online))

    def verified_ids(self) -> Iterator[UserId]:
        return iter(list(self.verified))
