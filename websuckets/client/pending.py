"""`PendingRequests`: the requests waiting for the event that carries their id back. No I/O."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from .errors import ClientError
from .events import ServerEvent


@dataclass(slots=True)
class Pending:
    """One request: its answer to come, and whether its frame went out on a connection."""

    future: asyncio.Future[ServerEvent]
    sent: bool = False


class PendingRequests:
    """The requests in flight, by id; ids count up from 1 (resume commands take theirs here too)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._waiting: dict[str | int, Pending] = {}

    def next_id(self) -> int:
        """A fresh command id."""
        return next(self._ids)

    def open(self) -> tuple[int, Pending]:
        """A new request: its id, and what its caller awaits."""
        command_id = self.next_id()
        pending = self._waiting[command_id] = Pending(asyncio.get_running_loop().create_future())
        return command_id, pending

    def get(self, command_id: str | int) -> Pending | None:
        """The request with this id, while it waits."""
        return self._waiting.get(command_id)

    def discard(self, command_id: str | int) -> None:
        """Forget a request (answered, timed out, or failed)."""
        self._waiting.pop(command_id, None)

    def answer(self, event: ServerEvent) -> bool:
        """Settle the request ``event`` answers, if one waits: an ``error`` event fails it with `ClientError`."""
        answers = event.answers
        pending = None if answers is None else self._waiting.pop(answers, None)
        if pending is None:
            return False
        if not pending.future.done():
            if event.is_error:
                pending.future.set_exception(ClientError.from_payload(event.payload))
            else:
                pending.future.set_result(event)
        return True

    def fail(self, name: str, why: str, *, sent_only: bool = False) -> None:
        """Fail every waiting request (or only those whose frame went out) with `ClientError` ``name``."""
        for command_id, pending in list(self._waiting.items()):
            if pending.sent or not sent_only:
                del self._waiting[command_id]
                if not pending.future.done():
                    pending.future.set_exception(ClientError(name, why))
