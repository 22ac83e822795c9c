"""History rooms in Redis: a Stream each, numbered by one script, read back for catch-ups.

APPEND numbers a room's message, keeps it and publishes it in one step, once per broadcast id: an
append sent to Redis whose answer never came (the connection dropped, no answer in time) may have
run, so it is sent again with the same id as soon as Redis answers, `RETRIES` times at most within
`RETRY_WITHIN` times the link's ``timeout``; Redis keeps and publishes it once. If none of those
gets an answer the sender gets `BackendOutcomeUnknown`. READ_HISTORY reads
what a member missed and sends the read's fence; a pipeline of HMGETs reads the rooms'
positions after a reconnection. This is the `HistoryReader` of `HistorySync`, and the writer
of rooms' messages; what the answers mean is decided there.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from ...exc import BackendUnavailable
from ...history import HISTORY_IDLE, History
from ...wire import Position
from .codec import RoomMessage
from .faults import MaybeWritten, outcome_unknown
from .history_sync import RoomMeta, Stored
from .keys import APPEND, READ_HISTORY, Keys
from .link import Command, RedisLink

logger = logging.getLogger("websuckets.redis")

RETRIES = 3
"""Times an append whose answer never came is sent again (with the same broadcast id)."""
RETRY_WITHIN = 2.0
"""...within this many times the link's ``timeout`` after the first sending failed."""


class RedisHistory:
    """The rooms' histories of one namespace, through ``link``."""

    def __init__(self, link: RedisLink, keys: Keys) -> None:
        self._link = link
        self._keys = keys
        self.run_id = ""
        """The Redis server's ``run_id``: a new one (a restart, a failover) ends every history room's epoch."""

    async def append(
        self, message: str, room: str, history: History, exclude: frozenset[UUID], channel: str
    ) -> Position:
        """Keep a history room's message and publish it on ``channel``; its members get it when their
        process hears it, in the order of the room's offsets, like everyone else's."""
        head = RoomMessage.head(room, exclude, self._link.worker_id)
        keys = self._keys.history_keys(room)
        timed = "0" if history.ttl is None else "1"  # Redis's time only for an age limit
        room_args = (history.size, _idle_ms(history), channel, head, message, timed)
        broadcast_id = secrets.token_hex(8)

        def command() -> Command:  # the run id of now: Redis may have been replaced meanwhile
            return ("EVALSHA", APPEND.sha, 3, *keys, secrets.token_hex(8), self.run_id, *room_args, broadcast_id)

        try:
            epoch, offset = await self._link.call(command(), "broadcast")
        except MaybeWritten:
            epoch, offset = await self._send_again(command, room)
        return Position(epoch, offset)

    async def _send_again(self, command: Callable[[], Command], room: str) -> Any:
        """Send an append whose answer never came again, as soon as Redis answers, until one gets an
        answer (`RETRIES` times at most, within `RETRY_WITHIN` times ``timeout``); `BackendOutcomeUnknown`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_WITHIN * self._link.timeout
        for _ in range(RETRIES):
            left = deadline - loop.time()
            if left <= 0 or not await self._link.wait_up(left):
                break
            try:
                async with asyncio.timeout_at(deadline):
                    return await self._link.call(command(), "broadcast")
            except BackendUnavailable:  # no answer again, or Redis away again: still unknown
                continue
            except TimeoutError:
                break
        logger.warning("a broadcast to history room %r got no answer, nor sent again: it may or may not be kept", room)
        raise outcome_unknown("broadcast")

    async def read(self, room: str, history: History, since: Position | None, fence: str) -> Stored:
        since_epoch, since_offset = since if since is not None else ("", 0)
        keys = self._keys.history_keys(room)
        args = (secrets.token_hex(8), self.run_id, _idle_ms(history), since_epoch, since_offset, history.size)
        command = ("EVALSHA", READ_HISTORY.sha, 3, *keys, *args, self._link.own_channel, fence)
        epoch, top, now, entries = await self._link.call(command, "resume")
        kept = []
        for entry_id, fields in entries:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            kept_at = values.get("t")
            kept.append((int(entry_id.partition("-")[0]), None if kept_at is None else int(kept_at), values["m"]))
        return Stored(epoch, int(top), now, kept)

    async def positions(self, rooms: Sequence[str], fence: str) -> list[RoomMeta]:
        pipe = self._link.client.pipeline(transaction=False)
        for room in rooms:
            pipe.hmget(self._keys.history_meta(room), "e", "s", "r")
        pipe.publish(self._link.own_channel, fence)
        *metas, _ = await pipe.execute()
        return [RoomMeta(epoch, 0 if top is None else int(top), run) for epoch, top, run in metas]


def _idle_ms(history: History) -> int:
    return int(max(HISTORY_IDLE, history.ttl or 0) * 1000)
