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
from .keys import POSITION, Keys
from .link import RedisLink
from .writer import Command

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
        sha = self._keys.scripts.append.sha

        def command() -> Command:  # the run id of now: Redis may have been replaced meanwhile
            return ("EVALSHA", sha, 3, *keys, secrets.token_hex(8), self.run_id, *room_args, broadcast_id)

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
        fence_channel = self._keys.fence_channel(room, self._link.own_channel)
        command = ("EVALSHA", self._keys.scripts.read_history.sha, 3, *keys, *args, fence_channel, fence)
        epoch, top, now, entries = await self._link.call(command, "resume")
        kept = []
        for entry_id, fields in entries:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            kept_at = values.get("t")
            kept.append((int(entry_id.partition("-")[0]), None if kept_at is None else int(kept_at), values["m"]))
        return Stored(epoch, int(top), now, kept)

    def fences(self, rooms: Sequence[str]) -> int:
        """How many times `positions` publishes its fence: once, or on a cluster once a room (on its channel)."""
        return len(rooms) if self._keys.sharded else 1

    async def positions(self, rooms: Sequence[str], fence: str) -> list[RoomMeta]:
        if self._keys.sharded:
            return await self._node_positions(rooms, fence)
        pipe = self._link.client.pipeline(transaction=False)
        for room in rooms:
            pipe.hmget(self._keys.history_meta(room), "e", "s", "r")
        pipe.publish(self._link.own_channel, fence)
        *metas, _ = await pipe.execute()
        return [RoomMeta(epoch, 0 if top is None else int(top), run) for epoch, top, run in metas]

    async def _node_positions(self, rooms: Sequence[str], fence: str) -> list[RoomMeta]:
        """On a cluster: each room's position read on its own node, whose run id (not the one of the
        namespace's node) says whether its epoch lives, and the fence on each room's channel."""
        pipe = self._link.client.pipeline(transaction=False)
        for room in rooms:
            pipe.execute_command(
                "EVALSHA", POSITION.sha, 1, self._keys.history_meta(room), self._keys.room_channel(room), fence
            )
        metas = []
        for epoch, top, run, node_run in await pipe.execute():
            alive = self.run_id if run == node_run else run  # HistorySync compares with this process's run id
            metas.append(RoomMeta(epoch, 0 if top is None else int(top), alive))
        return metas


def _idle_ms(history: History) -> int:
    return int(max(HISTORY_IDLE, history.ttl or 0) * 1000)
