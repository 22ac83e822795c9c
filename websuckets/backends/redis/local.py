"""This process's own clients, and delivery to them of what the other processes send.

The `Presence` holds every process's clients; these are the ones whose connections are here,
so the only ones this process writes to. Delivery never awaits a receiver (`send_now`). A
message for a client that has left meanwhile is dropped, counted (``dropped_deliveries``) and
logged, once every 10 s at most.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from uuid import UUID

from ...delivery import send_now
from ...user import User
from ..base import BackendHealth

logger = logging.getLogger("websuckets.redis")


class LocalClients:
    """The clients connected to this process, by connection id."""

    def __init__(self, health: BackendHealth) -> None:
        self.users: dict[UUID, User] = {}
        self._health = health
        self._last_drop_log = -math.inf

    def among(self, members: Mapping[UUID, User]) -> Iterator[User]:
        """Those of ``members`` connected here."""
        users = self.users
        return (user for client_id, user in members.items() if client_id in users)

    def send(self, members: Mapping[UUID, User], exclude: frozenset[UUID], message: str | bytes) -> None:
        """Send to those of ``members`` connected here, but ``exclude``."""
        users = self.users
        send_now((user.socket for cid, user in members.items() if cid in users and cid not in exclude), message)

    def send_to_each(self, connections: Iterable[User], message: str | bytes) -> None:
        """Send to those of ``connections`` (a user's, for one) that are here."""
        send_now([user.socket for user in connections if user.client_id in self.users], message)

    def send_to(self, client_id: UUID, message: str | bytes) -> None:
        """Send to one client; dropped, counted and logged if it has left."""
        user = self.users.get(client_id)
        if user is None:
            self._dropped(client_id)
            return
        send_now((user.socket,), message)

    def _dropped(self, client_id: UUID) -> None:
        self._health.dropped_deliveries += 1
        now = time.monotonic()
        if now - self._last_drop_log >= 10:  # one line per 10 s at most
            self._last_drop_log = now
            logger.warning(
                "dropped messages for clients that had left this process (%d so far; the latest for %s)",
                self._health.dropped_deliveries,
                client_id,
            )
