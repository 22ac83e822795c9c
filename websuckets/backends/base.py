"""The backend interface: what `Session` reads and writes.

Reads of presence are synchronous, because handlers read ``Session.online`` as a plain
mapping; a networked backend answers them from a local mirror. Token look-ups are
asynchronous, because only the authentication middleware makes them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar
from uuid import UUID

if TYPE_CHECKING:  # a cycle: session.User holds its backend
    from ..session import User

__all__ = ["Backend", "TokenRecord", "UserId"]

UserId = str | int
"""The id of a user (not of a connection): whatever the application sets on ``User.id``."""


@dataclass(slots=True, frozen=True)
class TokenRecord:
    """What a backend knows of an issued token."""

    user_id: UserId
    expires_at: float
    """A `time.time` timestamp."""


class Backend(ABC):
    """Stores who is online, who is verified, and which tokens are valid."""

    shared: ClassVar[bool] = False
    """Whether several processes see one state through this backend (``websuckets run --workers``)."""

    async def start(self) -> None:  # noqa: B027  (a hook: most backends need nothing here)
        """Called when the app starts."""

    async def close(self) -> None:  # noqa: B027  (a hook: most backends need nothing here)
        """Called when the app stops."""

    # presence: every connected client, keyed by the connection's id

    @abstractmethod
    def add_online(self, user: User) -> None: ...

    @abstractmethod
    def remove_online(self, user: User) -> None: ...

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

    # tokens

    @abstractmethod
    def remember_token(self, token: str, record: TokenRecord) -> None: ...

    @abstractmethod
    def forget_token(self, token: str) -> None: ...

    @abstractmethod
    async def find_token(self, token: str) -> TokenRecord | None:
        """The record of a token issued earlier and not forgotten, expired or not."""
