"""The backend interface: what `Session` reads and writes, and how messages reach clients.

Reads of presence are synchronous, because handlers read ``Session.online`` as a plain
mapping; a networked backend answers them from a local mirror. Everything that may have to
cross a network is asynchronous and fails loudly (`BackendUnavailable`): token look-ups,
joining and leaving rooms, and every fan-out. Writes of presence are synchronous for the
caller; a networked backend queues them in order and re-sends them after an outage.

Tokens reach a backend only as digests (`Token.digest`): no backend stores a usable token.

A backend is bound once, when the app starts (`Backend.bind`), to the app's session store
(`Sessions`: what it reports revoked tokens to, and asks for tokens held and resume
positions) and to the app's history rules. Nothing else is written onto it from above. The
serving layer awaits `Backend.failure` beside its stop signals: a backend that gives up (one
told to, ``RedisBackend(exit_after=...)``) stops the app with an error by returning from it.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol
from uuid import UUID

from ..exc import BackendUnavailable
from ..history import HistoryRules
from ..identity import TokenRecord, UserId
from ..presence import Presence
from ..user import User
from ..wire import Position

__all__ = ["Backend", "BackendHealth", "IndexedBackend", "Sessions", "TokenRecord", "UserId"]


class Sessions(Protocol):
    """What a backend reports to and asks of the app it serves: its session store (`Backend.bind`)."""

    def revoked(self, digest: str) -> None:
        """A token was revoked on another process: unverify the connections of this one holding it."""

    def held_tokens(self) -> list[tuple[str, TokenRecord]]:
        """The digest and record of each token a connection of this process holds (to announce again)."""

    def take_resume_position(self, user: User, room: str) -> Position | None:
        """The position a local client asked to resume ``room`` from, once: called as it joins the room."""


@dataclass(slots=True)
class BackendHealth:
    """What a backend can say about its own state: for readiness probes, logs and metrics."""

    connected: bool = True
    """Whether the shared store answers; always true for a backend without one."""
    reconnects: int = 0
    """Times the connection was rebuilt after a loss."""
    failed_operations: int = 0
    """Writes and deliveries that failed because the store did not answer."""
    dropped_deliveries: int = 0
    """Messages from other processes for clients that had left this one."""
    listener_errors: int = 0
    """Messages from the store that could not be handled (each logged with its traceback)."""
    history_gaps: int = 0
    """Times messages of a history room were found lost on their way here (its members were told)."""
    last_error: str | None = None
    """The kind of the latest failure of the shared store (``ConnectionError``, ``TimeoutError``,
    ``ReadOnlyError``, ...), ``None`` before any; the logs hold its cause."""
    last_error_at: float | None = None
    """When it happened, in seconds since the epoch (``time.time()``)."""


class Backend(ABC):
    """Stores who is online, who is verified, which tokens are valid, and who is in which room."""

    shared: ClassVar[bool] = False
    """Whether several processes see one state through this backend (``websuckets run --workers``)."""

    health: BackendHealth
    """Counters and the connection state; see `BackendHealth`."""

    sessions: Sessions
    """The app's session store (`bind`): told of tokens revoked on other processes."""

    history: HistoryRules = HistoryRules()
    """Which rooms keep history (``WebSuckets(history=...)``; `bind`)."""

    def bind(self, sessions: Sessions, history: HistoryRules) -> None:
        """Called once by the app as it starts, before `start`: what the backend serves.

        A backend that needs more at that point overrides this and calls ``super().bind``.
        """
        self.sessions = sessions
        self.history = history

    async def start(self) -> None:  # noqa: B027  (a hook: most backends need nothing here)
        """Called when the app starts; raise `BackendUnavailable` if the backend cannot be reached."""

    async def close(self) -> None:  # noqa: B027  (a hook: most backends need nothing here)
        """Called when the app stops."""

    async def failure(self) -> BackendUnavailable:
        """Return, with the error to stop on, once the backend has given up: the app then closes its
        connections (1001) and stops with that error. Awaited while the app serves; never returns by default."""
        never: asyncio.Future[BackendUnavailable] = asyncio.get_running_loop().create_future()
        return await never

    # presence: every connected client, keyed by the connection's id

    @abstractmethod
    def add_online(self, user: User) -> None: ...

    @abstractmethod
    def remove_online(self, user: User) -> None:
        """Forget a connection that closed, and take it out of every room."""

    @abstractmethod
    def get_online(self, client_id: UUID) -> User | None: ...

    @abstractmethod
    def online_ids(self) -> Iterator[UUID]: ...

    @abstractmethod
    def count_online(self) -> int: ...

    def online_users(self) -> list[User]:
        """Every connected client, at once: what ``Session.online.values()`` iterates.

        This default looks each one up; a backend that holds them together returns them directly.
        """
        return [user for client_id in self.online_ids() if (user := self.get_online(client_id)) is not None]

    def user_changed(self, user: User) -> None:  # noqa: B027  (a hook: only shared backends need it)
        """A local user's attributes or identity changed: share them (called only when `shared`)."""

    # verified users, keyed by the user's id; one user may be verified on several connections

    @abstractmethod
    def add_verified(self, user: User) -> None:
        """Record ``user`` (a connection) as verified under ``user.id``."""

    @abstractmethod
    def remove_verified(self, user_id: UserId, user: User) -> None:
        """Forget this connection of ``user_id``; the user's other connections stay verified."""

    @abstractmethod
    def get_verified(self, user_id: UserId) -> User | None:
        """The connection of ``user_id`` verified most recently, if any is left."""

    @abstractmethod
    def verified_ids(self) -> Iterator[UserId]: ...

    @abstractmethod
    def count_verified(self) -> int: ...

    # tokens, by digest

    @abstractmethod
    def remember_token(self, digest: str, record: TokenRecord) -> None:
        """Record an issued token (by its digest) until ``record.expires_at``."""

    @abstractmethod
    def forget_token(self, digest: str) -> None:
        """Revoke a token everywhere: every other process's `SessionStore.revoked` hears of it."""

    @abstractmethod
    async def find_token(self, digest: str) -> TokenRecord | None:
        """The record of a token issued earlier and not revoked, expired or not."""

    # rooms and delivery

    @abstractmethod
    async def join(self, client_id: UUID, room: str) -> None:
        """Put a connected client in a room; `KeyError` if no such client is connected."""

    @abstractmethod
    async def leave(self, client_id: UUID, room: str) -> None:
        """Take a client out of a room; nothing happens if it is not in it."""

    @abstractmethod
    def room_members(self, room: str) -> Mapping[UUID, User]:
        """The members of a room, on every process the backend reaches."""

    @abstractmethod
    def rooms_of(self, client_id: UUID) -> frozenset[str]:
        """The rooms a client is in (``User.rooms``); empty once it has left."""

    @abstractmethod
    async def broadcast(self, message: str | bytes, room: str | None, exclude: frozenset[UUID]) -> Position | None:
        """Send to every member of ``room`` (every client if ``None``) but ``exclude``, waiting for none.

        In a room with history the message is kept first, and its position returned.
        """

    @abstractmethod
    async def send_to_user(self, user_id: UserId, message: str | bytes) -> None:
        """Send to every connection verified as ``user_id``, waiting for none."""

    # room history

    async def recover(self, user: User, room: str, since: Position | None) -> bool:
        """Send a local member of a history room what it missed after ``since``, then its position.

        Called when a client joins a history room (``since`` is the position it asked to
        resume from, if any) and when a member asks to resume. Returns whether it recovered.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no room history")

    def keeps_history(self, room: str) -> bool:
        return self.history.active and self.history.for_room(room) is not None


class IndexedBackend(Backend):
    """A backend that answers every read of presence from a `Presence` index in this process.

    Both built-in backends are: `MemoryBackend` indexes this process's clients, `RedisBackend`
    its mirror of every process's clients.
    """

    presence: Presence

    def add_online(self, user: User) -> None:
        self.presence.add(user)

    def remove_online(self, user: User) -> None:
        self.presence.remove(user)

    def get_online(self, client_id: UUID) -> User | None:
        return self.presence.online.get(client_id)

    def online_ids(self) -> Iterator[UUID]:
        return self.presence.online_ids()

    def count_online(self) -> int:
        return len(self.presence.online)

    def online_users(self) -> list[User]:
        return list(self.presence.online.values())

    def add_verified(self, user: User) -> None:
        self.presence.add_verified(user)

    def remove_verified(self, user_id: UserId, user: User) -> None:
        self.presence.remove_verified(user_id, user)

    def get_verified(self, user_id: UserId) -> User | None:
        return self.presence.latest_verified(user_id)

    def verified_ids(self) -> Iterator[UserId]:
        return self.presence.verified_ids()

    def count_verified(self) -> int:
        return len(self.presence.verified)

    def room_members(self, room: str) -> Mapping[UUID, User]:
        return self.presence.members(room)

    def rooms_of(self, client_id: UUID) -> frozenset[str]:
        return self.presence.rooms_of(client_id)
