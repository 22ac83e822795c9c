"""The mirror: every process's view of the clients of the others, and the records it is made of.

Each process publishes a `ClientRecord` of each of its clients whenever it changes (`record`),
and applies every other process's records to its own `Presence` (`apply`, `forget`), where a
`RemoteUser` stands for each client of another process beside this process's `User` objects.
After a reconnection the whole mirror is loaded again from Redis (`load`). No I/O here: the
backend hands in what it heard or read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from pydantic_core import to_json

from ...presence import Presence
from ...remote import Deliver, RemoteSocket, RemoteUser
from ...user import User
from .codec import ClientRecord

logger = logging.getLogger("websuckets.redis")

_INTERNAL = frozenset(("socket", "id", "token"))
"""User attributes that never go into the shared record (the token least of all)."""


class Mirror:
    """The clients of the other processes in ``presence``, as `RemoteUser` objects.

    Args:
        presence: the index every read of presence answers from.
        worker_id: this process's id: its own records are not mirrored.
        deliver: what a `RemoteSocket` sends through.
    """

    def __init__(self, presence: Presence, worker_id: str, deliver: Deliver) -> None:
        self.presence = presence
        self.worker_id = worker_id
        self._deliver = deliver
        self._unshareable: set[str] = set()

    def record(self, user: User) -> ClientRecord:
        """What the other processes are to see of a client of this one: the attributes that are JSON values."""
        attributes: dict[str, Any] = {}
        for name, value in vars(user).items():
            if name.startswith("_") or name in _INTERNAL:
                continue
            try:
                attributes[name] = json.loads(to_json(value))
            except (ValueError, TypeError):
                if name not in self._unshareable:
                    self._unshareable.add(name)
                    logger.warning("User.%s holds %s, not a JSON value: it stays on this process", name, type(value))
        user_id = user.id if user.verified else None
        return ClientRecord(self.worker_id, user_id, attributes, tuple(sorted(user.rooms)), user.socket.remote_address)

    def apply(self, client_id: UUID, record: ClientRecord) -> None:
        """Apply another process's record of one of its clients: its identity, attributes and rooms."""
        if record.worker == self.worker_id:
            return
        user = self.presence.online.get(client_id)
        if user is None:
            socket = RemoteSocket(client_id, record.worker, record.remote_address, self._deliver)
            user = RemoteUser(socket, None, {}, self.presence)
            self.presence.add(user)
        elif not isinstance(user, RemoteUser):
            return  # a stale record of a client now connected here
        if user.id != record.user_id:
            if user.id is not None:
                self.presence.remove_verified(user.id, user)
            user._refresh(record.user_id, record.attributes)
            if record.user_id is not None:
                self.presence.add_verified(user)
        else:
            user._refresh(record.user_id, record.attributes)
        rooms, before = set(record.rooms), user.rooms
        for room in before - rooms:
            self.presence.leave(user, room)
        for room in rooms - before:
            self.presence.join(user, room)

    def forget(self, client_id: UUID) -> None:
        """A client of another process is gone: out of every index, and its socket closed."""
        user = self.presence.online.get(client_id)
        if not isinstance(user, RemoteUser):
            return
        user.socket.gone = True
        if user.id is not None:
            self.presence.remove_verified(user.id, user)
        self.presence.remove(user)

    def load(self, stored: Mapping[str, str]) -> None:
        """Make the mirror what Redis holds (client id's hex -> record): after a reconnection."""
        remote = {UUID(cid): ClientRecord.parse(record) for cid, record in stored.items()}
        for cid, user in list(self.presence.online.items()):
            if isinstance(user, RemoteUser) and (cid not in remote or remote[cid].worker == self.worker_id):
                self.forget(cid)
        for cid, record in remote.items():
            self.apply(cid, record)
