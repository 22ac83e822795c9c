"""The in-process backend: plain dictionaries, the default."""

from __future__ import annotations

import secrets
import time
from collections import deque
from uuid import UUID

from ..delivery import send_now
from ..history import HISTORY_IDLE, History, Read, replay, stamp, stampable
from ..identity import TokenRecord, UserId
from ..presence import Presence
from ..user import User
from ..wire import Position
from .base import BackendHealth, IndexedBackend

__all__ = ["MemoryBackend"]


class MemoryBackend(IndexedBackend):
    """Keeps session state in this process: enough for one server process.

    Tokens are kept by digest only, and die with the process.
    """

    PRUNE_MINIMUM = 1024
    """Tokens stored (and rooms' histories kept) before the first sweep of expired (idle) ones."""

    def __init__(self) -> None:
        self.presence = Presence()
        self.health = BackendHealth()
        self._tokens: dict[str, TokenRecord] = {}
        self._prune_at = self.PRUNE_MINIMUM
        self._logs: dict[str, _RoomLog] = {}
        self._prune_logs_at = self.PRUNE_MINIMUM

    # tokens

    def remember_token(self, digest: str, record: TokenRecord) -> None:
        self._tokens[digest] = record
        if len(self._tokens) >= self._prune_at:
            self._prune_expired()

    def _prune_expired(self) -> None:
        """Drop expired tokens; amortised, so the store stays proportional to the live ones."""
        now = time.time()
        self._tokens = {digest: record for digest, record in self._tokens.items() if record.expires_at > now}
        self._prune_at = 2 * len(self._tokens) + self.PRUNE_MINIMUM

    def forget_token(self, digest: str) -> None:
        self._tokens.pop(digest, None)

    async def find_token(self, digest: str) -> TokenRecord | None:
        return self._tokens.get(digest)

    # rooms and delivery

    async def join(self, client_id: UUID, room: str) -> None:
        user = self._connected(client_id)
        self.presence.join(user, room)
        if self.keeps_history(room):
            await self.recover(user, room, self.sessions.take_resume_position(user, room))

    async def leave(self, client_id: UUID, room: str) -> None:
        user = self.presence.online.get(client_id)
        if user is not None:
            self.presence.leave(user, room)

    async def broadcast(self, message: str | bytes, room: str | None, exclude: frozenset[UUID]) -> Position | None:
        position = None
        if room is None:
            members = self.presence.online
        else:
            members = self.presence.members(room)
            history = self.history.for_room(room) if self.history.active else None
            if history is not None:
                text = stampable(message, room)
                position = self._log(room, history).append(text)
                message = stamp(text, room, position)
        send_now((user.socket for client_id, user in members.items() if client_id not in exclude), message)
        return position

    async def send_to_user(self, user_id: UserId, message: str | bytes) -> None:
        send_now([user.socket for user in self.presence.verified.get(user_id, ())], message)

    # room history

    async def recover(self, user: User, room: str, since: Position | None) -> bool:
        history = self.history.for_room(room)
        assert history is not None, "called for history rooms only"
        return replay(user.socket, room, since, self._log(room, history).read(since))

    def _log(self, room: str, history: History) -> _RoomLog:
        log = self._logs.get(room)
        if log is None:
            if len(self._logs) >= self._prune_logs_at:
                self._prune_idle_logs()
            log = self._logs[room] = _RoomLog(history)
        return log

    def _prune_idle_logs(self) -> None:
        """Forget the history of rooms silent for `HISTORY_IDLE` (or their ttl, when longer), as Redis expires them."""
        now = time.time()
        self._logs = {room: log for room, log in self._logs.items() if not log.idle_since(now)}
        self._prune_logs_at = 2 * len(self._logs) + self.PRUNE_MINIMUM

    def _connected(self, client_id: UUID) -> User:
        user = self.presence.online.get(client_id)
        if user is None:
            raise KeyError(client_id)
        return user


class _RoomLog:
    """One room's last messages: a ring buffer of (offset, time, message), and the room's epoch."""

    __slots__ = ("entries", "epoch", "keep", "top", "ttl", "used")

    def __init__(self, history: History) -> None:
        self.epoch = secrets.token_hex(8)
        self.top = 0
        self.ttl = history.ttl
        self.keep = max(HISTORY_IDLE, history.ttl or 0)
        self.used = time.time()
        self.entries: deque[tuple[int, float, str]] = deque(maxlen=history.size)

    def idle_since(self, now: float) -> bool:
        return now - self.used > self.keep

    def append(self, message: str) -> Position:
        self.top += 1
        self.used = time.time()
        self.entries.append((self.top, self.used, message))
        return Position(self.epoch, self.top)

    def read(self, since: Position | None) -> Read:
        """The position now, and the unexpired entries after ``since`` (none for a plain join or another epoch)."""
        if since is None or since.epoch != self.epoch or since.offset >= self.top:
            return Read(self.epoch, self.top, ())
        oldest = -float("inf") if self.ttl is None else time.time() - self.ttl
        after = [(offset, message) for offset, at, message in self.entries if offset > since.offset and at > oldest]
        return Read(self.epoch, self.top, after)
