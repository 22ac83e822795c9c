"""Asking another process to change one of its clients (join, leave), and answering such a request.

Only a client's own process may change it: another process sends a `codec.Join` or
`codec.Leave` on that process's channel (`ask`). A join waits for the answer, a `codec.Joined`
sent back on the asker's channel once the client's process hears the room (and, with history,
has fenced the client's catch-up; `answer_when_done`), so that a broadcast sent after the join
returns reaches the client. Processes of websuckets 0.1 never answer: the join then raises
`BackendOutcomeUnknown` after twice ``timeout``, though it happened.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from . import codec
from .faults import outcome_unknown, unavailable
from .keys import Keys

Command = tuple[Any, ...]
"""A Redis command and its arguments (`websuckets.backends.redis.writer.Command`; not imported: no redis-py here)."""


class Requests:
    """The requests of one process to the others, and its answers to theirs.

    Args:
        call: sends a command through the link and returns Redis's answer (`RedisLink.call`).
        enqueue: queues a command nobody waits for (`RedisLink.enqueue`).
        worker_of: the process of a client of another process, or None if there is no such client.
    """

    def __init__(
        self,
        keys: Keys,
        timeout: float,
        call: Callable[[Command, str], Awaitable[Any]],
        enqueue: Callable[[Command, str], None],
        worker_of: Callable[[UUID], str | None],
    ) -> None:
        self.keys = keys
        self.timeout = timeout
        self.worker_id = ""
        """This process's id, once it started: where the answers come."""
        self._call = call
        self._enqueue = enqueue
        self._worker_of = worker_of
        self._waiting: dict[str, asyncio.Future[bool]] = {}
        """The joins asked of another process that wait for its `codec.Joined`, by key."""

    async def ask(self, client_id: UUID, event: bytes) -> None:
        """Send ``event`` to the process of ``client_id``; `KeyError` if it has no such client, or (on one
        Redis, whose counts tell) nobody heard it."""
        worker = self._worker_of(client_id)
        if worker is None:
            raise KeyError(client_id)
        heard = await self._call((self.keys.publish, self.keys.worker_channel(worker), event), "forward")
        if not heard and self.keys.counts_listeners:
            raise KeyError(client_id)

    async def join(self, client_id: UUID, room: str) -> None:
        """Have the process of ``client_id`` join it to ``room``, and wait until it has."""
        key = secrets.token_hex(8)
        answer = self._waiting[key] = asyncio.get_running_loop().create_future()
        try:
            await self.ask(client_id, codec.Join(client_id, room, self.worker_id, key).encode())
            async with asyncio.timeout(2 * self.timeout):  # its SUBSCRIBE, record and catch-up read: each bounded
                joined = await answer
        except TimeoutError:
            raise outcome_unknown("join") from None  # asked, never answered (a process older than this one)
        finally:
            del self._waiting[key]
        if not joined:
            raise unavailable("join")

    def answered(self, message: codec.Joined) -> None:
        """The answer to one of this process's joins."""
        answer = self._waiting.get(message.key)
        if answer is not None and not answer.done():
            answer.set_result(message.ok)

    async def answer_when_done(self, message: codec.Join, work: Awaitable[None] | None) -> None:
        """Run ``work`` (joining the client here; None: the client is gone), then answer the process that asked."""
        joined = False
        try:
            if work is not None:
                await work
            joined = True
        finally:
            if message.reply_to is not None and message.key is not None:
                answer = codec.Joined(message.key, joined).encode()
                self._enqueue((self.keys.publish, self.keys.worker_channel(message.reply_to), answer), "join answer")
