"""``User`` and ``Session``: who is online, who is verified, who is in which room.

``Session.online``, ``Session.verified`` and ``Session.room(name)`` are read-only mappings
over the backend of the app that is serving, and ``Session.join``, ``leave``, ``broadcast``
and ``send_to_user`` act through it: inside a connection, the app of that connection;
elsewhere (a background task), the app started last.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, ValuesView
from contextvars import ContextVar
from typing import ClassVar
from uuid import UUID

from .backends.base import Backend
from .exc import AppStateError
from .identity import UserId
from .store import SessionStore
from .user import User
from .wire import Position

__all__ = ["Session", "User"]


_serving: ContextVar[SessionStore | None] = ContextVar("websuckets_session_store", default=None)
_started: list[SessionStore] = []
"""Stores of the apps running in this process, oldest first."""


def activate(store: SessionStore) -> None:
    """Make ``store`` what ``Session`` reads outside any connection, while its app runs last-started."""
    _started.append(store)


def deactivate(store: SessionStore) -> None:
    """Forget a stopped app's store; the app started before it becomes the fallback again."""
    if store in _started:
        _started.remove(store)


def enter_connection(store: SessionStore) -> None:
    """Make ``store`` what ``Session`` reads in this task (the task of one connection)."""
    _serving.set(store)


def current_backend() -> Backend:
    store = _serving.get() or (_started[-1] if _started else None)
    if store is None:
        raise AppStateError("no websuckets app is running: Session is only available while one serves")
    return store.backend


class _OnlineUsers(Mapping[UUID, User]):
    def __getitem__(self, client_id: UUID) -> User:
        user = current_backend().get_online(client_id)
        if user is None:
            raise KeyError(client_id)
        return user

    def __contains__(self, client_id: object) -> bool:
        return isinstance(client_id, UUID) and current_backend().get_online(client_id) is not None

    def __iter__(self) -> Iterator[UUID]:
        return current_backend().online_ids()

    def __len__(self) -> int:
        return current_backend().count_online()

    def values(self) -> ValuesView[User]:
        """The connected clients, taken at once: sending to each while others come and go is safe."""
        return _Snapshot(current_backend().online_users())

    def __repr__(self) -> str:
        return f"Session.online({dict(self)!r})"


class _Snapshot(ValuesView[User]):
    """The values of `Session.online`, read from the backend in one call."""

    __slots__ = ("_users",)

    def __init__(self, users: list[User]) -> None:
        self._users = users

    def __iter__(self) -> Iterator[User]:
        return iter(self._users)

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, user: object) -> bool:
        return user in self._users

    def __repr__(self) -> str:
        return f"Session.online.values({self._users!r})"


class _VerifiedUsers(Mapping[UserId, User]):
    def __getitem__(self, user_id: UserId) -> User:
        user = current_backend().get_verified(user_id)
        if user is None:
            raise KeyError(user_id)
        return user

    def __contains__(self, user_id: object) -> bool:
        return isinstance(user_id, str | int) and current_backend().get_verified(user_id) is not None

    def __iter__(self) -> Iterator[UserId]:
        return current_backend().verified_ids()

    def __len__(self) -> int:
        return current_backend().count_verified()

    def __repr__(self) -> str:
        return f"Session.verified({dict(self)!r})"


class _RoomMembers(Mapping[UUID, User]):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __getitem__(self, client_id: UUID) -> User:
        return current_backend().room_members(self.name)[client_id]

    def __contains__(self, client_id: object) -> bool:
        return client_id in current_backend().room_members(self.name)

    def __iter__(self) -> Iterator[UUID]:
        return iter(list(current_backend().room_members(self.name)))

    def __len__(self) -> int:
        return len(current_backend().room_members(self.name))

    def __repr__(self) -> str:
        return f"Session.room({self.name!r}, {dict(self)!r})"


class Session:
    """Every connected client (``online``), every verified one (``verified``), and rooms."""

    online: ClassVar[Mapping[UUID, User]] = _OnlineUsers()
    """Connected clients, keyed by the connection's id (``socket.id``)."""
    verified: ClassVar[Mapping[UserId, User]] = _VerifiedUsers()
    """Verified clients, keyed by the user's id (``User.id``)."""

    @staticmethod
    async def join(client_id: UUID, room: str) -> None:
        """Put a connected client in ``room``; it leaves every room when it disconnects.

        In a room with history (``WebSuckets(history=...)``) the client then gets its position
        (``websuckets position``), after the messages it missed if it asked to resume the room.
        Raises `KeyError` if no such client is connected, and `BackendUnavailable` if a
        shared backend cannot be reached (the client is then in the room on its own process only).
        """
        await current_backend().join(client_id, _room_name(room))

    @staticmethod
    async def leave(client_id: UUID, room: str) -> None:
        """Take a client out of ``room``; nothing happens if it is not in it."""
        await current_backend().leave(client_id, _room_name(room))

    @staticmethod
    def room(name: str) -> Mapping[UUID, User]:
        """The members of a room, keyed by connection id, on every process; empty if nobody is in it."""
        return _RoomMembers(_room_name(name))

    @staticmethod
    async def broadcast(
        message: str | bytes, room: str | None = None, exclude: UUID | Iterable[UUID] | None = None
    ) -> Position | None:
        """Send ``message`` (a `ClientEvent`, or any text) to every member of ``room``, or to every client.

        Waits for no receiver: each gets the message queued at once, and one slow or gone
        client delays nobody. ``exclude`` takes a client id, or several.

        A room with history keeps the message first and returns its `Position`; its messages
        must be JSON objects (a `ClientEvent`), which reach clients with ``room``, ``epoch``
        and ``offset`` added.
        """
        return await current_backend().broadcast(message, None if room is None else _room_name(room), _ids(exclude))

    @staticmethod
    async def send_to_user(user_id: UserId, message: str | bytes) -> None:
        """Send ``message`` to every connection verified as ``user_id``, on every process."""
        await current_backend().send_to_user(user_id, message)


def _room_name(room: str) -> str:
    if not isinstance(room, str) or not room:
        raise ValueError(f"a room's name is a non-empty string, not {room!r}")
    return room


def _ids(exclude: UUID | Iterable[UUID] | None) -> frozenset[UUID]:
    if exclude is None:
        return frozenset()
    if isinstance(exclude, UUID):
        return frozenset((exclude,))
    return frozenset(exclude)
