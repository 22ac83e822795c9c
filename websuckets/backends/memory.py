"""The in-process backend: plain dictionaries, the default."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING
from uuid import UUID

from ..security import Token
from .base import Backend, TokenRecord, UserId

if TYPE_CHECKING:  # a cycle: session.User holds its backend
    from ..session import User

__all__ = ["MemoryBackend"]


class MemoryBackend(Backend):
    """Keeps session state in this process: enough for one server process."""

    PRUNE_MINIMUM = 1024
    """Tokens stored before the first sweep of expired ones."""

    def __init__(self) -> None:
        self._online: dict[UUID, User] = {}
        self._verified: dict[UserId, list[User]] = {}  # the user's connections, latest verified last
        self._tokens: dict[str, tuple[str, TokenRecord]] = {}
        self._prune_at = self.PRUNE_MINIMUM

    def add_online(self, user: User) -> None:
        self._online[user.client_id] = user

    def remove_online(self, user: User) -> None:
        self._online.pop(user.client_id, None)

    def get_online(self, client_id: UUID) -> User | None:
        return self._online.get(client_id)

    def online_ids(self) -> Iterator[UUID]:
        return iter(list(self._online))

    def count_online(self) -> int:
        return len(self._online)

    def online_users(self) -> list[User]:
        return list(self._online.values())

    def add_verified(self, user: User) -> None:
        assert user.id is not None
        connections = self._verified.setdefault(user.id, [])
        if user in connections:
            connections.remove(user)
        connections.append(user)

    def remove_verified(self, user_id: UserId, user: User) -> None:
        connections = self._verified.get(user_id, [])
        if user in connections:
            connections.remove(user)
            if not connections:
                del self._verified[user_id]

    def get_verified(self, user_id: UserId) -> User | None:
        connections = self._verified.get(user_id)
        return connections[-1] if connections else None

    def verified_ids(self) -> Iterator[UserId]:
        return iter(list(self._verified))

    def count_verified(self) -> int:
        return len(self._verified)

    def remember_token(self, token: str, record: TokenRecord) -> None:
        self._tokens[Token.digest(token)] = (token, record)
        if len(self._tokens) >= self._prune_at:
            self._prune_expired()

    def _prune_expired(self) -> None:
        """Drop expired tokens; amortised, so the store stays proportional to the live ones."""
        now = time.time()
        self._tokens = {key: value for key, value in self._tokens.items() if value[1].expires_at > now}
        self._prune_at = 2 * len(self._tokens) + self.PRUNE_MINIMUM

    def forget_token(self, token: str) -> None:
        self._tokens.pop(Token.digest(token), None)

    async def find_token(self, token: str) -> TokenRecord | None:
        stored = self._tokens.get(Token.digest(token))
        if stored is None or not Token.matches(stored[0], token):
            return None
        return stored[1]
