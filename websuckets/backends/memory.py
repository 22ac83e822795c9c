"""The in-process backend: plain dictionaries, the default."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from uuid import UUID

from ..delivery import send_now
from ..presence import Presence
from .base import BackendHealth, IndexedBackend, TokenRecord, UserId

if TYPE_CHECKING:  # a cycle: session.User holds its backend
    from ..session import User

__all__ = ["MemoryBackend"]


class MemoryBackend(IndexedBackend):
    """Keeps session state in this process: enough for one server process.

    Tokens are kept by digest only, and die with the process.
    """

    PRUNE_MINIMUM = 1024
    """Tokens stored before the first sweep of expired ones."""

    def __init__(self) -> None:
        self.presence = Presence()
        self.health = BackendHealth()
        self._tokens: dict[str, TokenRecord] = {}
        self._prune_at = self.PRUNE_MINIMUM

    # presence

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
        self.presence.join(self._connected(client_id), room)

    async def leave(self, client_id: UUID, room: str) -> None:
        user = self.presence.online.get(client_id)
        if user is not None:
            self.presence.leave(user, room)

    async def broadcast(self, message: str | bytes, room: str | None, exclude: frozenset[UUID]) -> None:
        members = self.presence.online if room is None else self.presence.members(room)
        send_now((user.socket for client_id, user in members.items() if client_id not in exclude), message)

    async def send_to_user(self, user_id: UserId, message: str | bytes) -> None:
        send_now([user.socket for user in self.presence.verified.get(user_id, ())], message)

    def _connected(self, client_id: UUID) -> User:
        user = self.presence.online.get(client_id)
        if user is None:
            raise KeyError(client_id)
        return user
