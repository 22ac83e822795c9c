"""Who a user is, and what a backend knows of a token: the value types every layer shares.

They stand on the standard library alone, so that the session store, the backends and the
presence index can all name them without importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass

UserId = str | int
"""The id of a user (not of a connection): whatever the application sets on ``User.id``."""


@dataclass(slots=True, frozen=True)
class TokenRecord:
    """What a backend knows of an issued token."""

    user_id: UserId
    expires_at: float
    """A `time.time` timestamp."""
