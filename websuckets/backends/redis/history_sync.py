"""History rooms across processes: catch-up behind a fence, and the search for lost messages.

A history room's messages reach this process only as Redis publishes them, numbered. A member
that joins or resumes is *caught up*: the room's history is read, and live messages of the
room are held for it meanwhile; the read also publishes a *fence* on this process's own
channel, and once the fence is heard, every message published before the read has been heard
too. Then, in one step, the member gets what it missed, its position, and what was held.

Each room with members here is *tracked*: the position last heard. An offset that skips, or an
epoch that changes, means messages were lost on their way (pub/sub drops what a subscriber does
not hear); after a reconnection the positions are compared with Redis. Either way the room's
members here are told (``websuckets gap``) and resume. Redis is read through a `HistoryReader`,
so that this logic runs without one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple, Protocol
from uuid import UUID

from ...delivery import send_now
from ...history import History, Read, gap_event, replay, stamp
from ...user import User
from ...wire import Position
from ..base import BackendHealth
from .codec import Fence

logger = logging.getLogger("websuckets.redis")


class Stored(NamedTuple):
    """A read of a room's history in Redis: its position, Redis's clock, the entries after the asked offset."""

    epoch: str
    top: int
    now: int
    """Redis's clock, in milliseconds."""
    entries: Sequence[tuple[int, int | None, str]]
    """(offset, time kept in ms or ``None`` if kept without one, message), oldest first."""


class RoomMeta(NamedTuple):
    """A room's position in Redis, and the ``run_id`` of the Redis server that started its epoch."""

    epoch: str | None
    top: int
    run: str | None


class HistoryReader(Protocol):
    """Where rooms' histories are read: Redis, or a test's fake."""

    @property
    def run_id(self) -> str:
        """The run id of the Redis server now: an epoch that another one started has ended."""

    async def read(self, room: str, history: History, since: Position | None, fence: str) -> Stored:
        """The room's history after ``since``; then publish ``fence`` on this process's own channel."""

    async def positions(self, rooms: Sequence[str], fence: str) -> list[RoomMeta]:
        """Each room's position; then publish ``fence`` on this process's own channel (`fences` times)."""

    def fences(self, rooms: Sequence[str]) -> int:
        """How many times `positions` of ``rooms`` publishes its fence (on a cluster, once on each room's channel)."""


class CatchUp:
    """A member of a history room being brought up to date: live messages wait for its replay."""

    __slots__ = ("fence", "gap", "live", "was_member")

    def __init__(self) -> None:
        self.live: list[tuple[int, str]] = []
        """(offset, stamped message) heard meanwhile, sent after the replay."""
        self.gap = False
        """Set when messages of the room were lost meanwhile: the member is told after its replay."""
        self.fence: asyncio.Future[None] | None = None
        """Done once this process has heard everything published before the history was read."""
        self.was_member = False
        """Whether the member was in the room already (a join again): a failed join leaves it there."""


class RoomTrack:
    """What this process has heard of a history room it has members in: to notice lost messages."""

    __slots__ = ("catching_up", "epoch", "offset")

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.offset = 0
        self.catching_up: dict[UUID, CatchUp] = {}


class HistorySync:
    """The history rooms with members on this process: their catch-ups, fences and positions.

    Args:
        reader: where the histories are read.
        timeout: seconds to wait for a fence; past it the member is told to resume again.
        health: counts the gaps found (``history_gaps``).
        history_of: a room's `History`, or ``None`` if it keeps none.
        members_here: the members of a room connected to this process.
        is_member: whether a client is (still) connected here and in a room.
    """

    def __init__(
        self,
        reader: HistoryReader,
        *,
        timeout: float,
        health: BackendHealth,
        history_of: Callable[[str], History | None],
        members_here: Callable[[str], Iterator[User]],
        is_member: Callable[[User, str], bool],
    ) -> None:
        self._reader = reader
        self._timeout = timeout
        self._health = health
        self._history_of = history_of
        self._members_here = members_here
        self._is_member = is_member
        self.tracks: dict[str, RoomTrack] = {}
        """History rooms with members here, and the last position heard in each."""
        self.fences: dict[str, asyncio.Future[None]] = {}
        """Fences sent and not heard back yet, by key."""
        self._fence_copies: dict[str, int] = {}
        """Fence key -> how many of its copies are still to be heard."""

    # catching a member up

    def start_catch_up(self, user: User, room: str) -> CatchUp:
        """Hold the room's live messages for ``user`` from now on, until its `catch_up`."""
        track = self.tracks.get(room)
        if track is None:
            track = self.tracks[room] = RoomTrack()
        catch_up = track.catching_up[user.client_id] = CatchUp()
        return catch_up

    def _end_catch_up(self, user: User, room: str, catch_up: CatchUp) -> list[tuple[int, str]]:
        """Stop holding live messages for ``user``: those held so far, to send now."""
        track = self.tracks.get(room)
        if track is not None and track.catching_up.get(user.client_id) is catch_up:
            del track.catching_up[user.client_id]
        if catch_up.fence is not None:
            catch_up.fence.cancel()
        return catch_up.live

    def release(self, user: User, room: str, catch_up: CatchUp) -> None:
        """A catch-up that failed: the live messages held so far go out as they are."""
        for _, message in self._end_catch_up(user, room, catch_up):
            send_now([user.socket], message)

    async def catch_up(self, user: User, room: str, since: Position | None, catch_up: CatchUp) -> bool:
        """Read the room's history and wait until this process has heard everything published
        before the read; then, in one step, replay, position, and what was heard meanwhile."""
        try:
            read, fence = await self._read(room, since, catch_up)
            fenced = await self._wait_fence(fence)
        except BaseException:  # Redis away, or the caller cancelled (a command's time limit)
            self.release(user, room, catch_up)
            raise
        live = self._end_catch_up(user, room, catch_up)
        track = self.tracks.get(room)
        if track is not None and track.epoch is None:
            track.epoch, track.offset = read.epoch, read.top
        if not self._is_member(user, room):
            return False  # gone meanwhile
        complete = replay(user.socket, room, since, read, live)
        if catch_up.gap or not fenced:
            send_now([user.socket], gap_event(room))
        return complete

    async def _read(self, room: str, since: Position | None, catch_up: CatchUp) -> tuple[Read, asyncio.Future[None]]:
        """The room's history after ``since``, and the fence the read sent (kept on ``catch_up`` too, to cancel)."""
        history = self._history_of(room)
        assert history is not None, "a room with history"
        catch_up.fence, fence_message = self._new_fence()
        stored = await self._reader.read(room, history, since, fence_message)
        oldest = -math.inf if history.ttl is None else stored.now - history.ttl * 1000
        kept = [
            (offset, message)
            for offset, kept_at, message in stored.entries
            if (stored.now if kept_at is None else kept_at) > oldest  # kept without a time: no ttl then
        ]
        return Read(stored.epoch, stored.top, kept), catch_up.fence

    # fences

    def _new_fence(self, copies: int = 1) -> tuple[asyncio.Future[None], str]:
        """A future set when this process has heard the returned message ``copies`` times."""
        key = secrets.token_hex(8)
        future = self.fences[key] = asyncio.get_running_loop().create_future()
        self._fence_copies[key] = copies
        future.add_done_callback(lambda _: (self.fences.pop(key, None), self._fence_copies.pop(key, None)))
        return future, Fence(key).encode()

    def fence_heard(self, key: str) -> None:
        fence = self.fences.get(key)
        if fence is None or fence.done():
            return
        left = self._fence_copies[key] = self._fence_copies.get(key, 1) - 1
        if left <= 0:
            fence.set_result(None)

    async def _wait_fence(self, fence: asyncio.Future[None]) -> bool:
        """Wait for a fence; ``False`` if it did not come back in time (a member is then told to resume again)."""
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(fence)
        except TimeoutError:
            logger.warning("a fence on this process's channel did not come back within %s s", self._timeout)
            return False
        return True

    # live messages, and the positions heard

    def heard(self, room: str, exclude: frozenset[UUID], position: Position, message: str) -> None:
        """A history room's message, in offset order: to members here, or held for those catching up."""
        track = self.tracks.get(room)
        held: dict[UUID, CatchUp] = {}
        if track is not None:  # members here (without, a process configured without this room's history)
            self._check_continuity(room, track, position)
            held = track.catching_up
        stamped = stamp(message, room, position)
        if held:  # members here catching up: they get it after their replay
            for cid, catch_up in held.items():
                if cid not in exclude:
                    catch_up.live.append((position.offset, stamped))
            exclude = exclude.union(held)
        send_now((user.socket for user in self._members_here(room) if user.client_id not in exclude), stamped)

    def _check_continuity(self, room: str, track: RoomTrack, position: Position) -> None:
        """Tell the room's members here when a message of it never arrived (or its history was lost)."""
        if track.epoch is not None and (position.epoch != track.epoch or position.offset != track.offset + 1):
            if position.epoch == track.epoch and position.offset <= track.offset:
                return  # an older message, already covered by a member's replay: nothing lost
            self._tell_gap(room, track)
        track.epoch, track.offset = position

    def _tell_gap(self, room: str, track: RoomTrack) -> None:
        self._health.history_gaps += 1
        logger.warning("messages of history room %r were lost on their way here; its members will resume", room)
        for catch_up in track.catching_up.values():
            catch_up.gap = True
        members = self._members_here(room)
        send_now([user.socket for user in members if user.client_id not in track.catching_up], gap_event(room))

    def untrack_if_empty(self, room: str) -> None:
        """Stop tracking a room once no member of it is left here."""
        if room in self.tracks and not any(True for _ in self._members_here(room)):
            del self.tracks[room]

    def tracked(self, rooms: Iterable[str]) -> list[str]:
        """Those of ``rooms`` that are tracked."""
        return [room for room in rooms if room in self.tracks]

    async def check_positions(self) -> None:
        """After a reconnection: once this process has heard what was published before it looked,
        compare each tracked room with Redis, and tell its members here of what was lost."""
        tracked = [(room, track) for room, track in self.tracks.items() if track.epoch is not None]
        if not tracked:
            return
        rooms = [room for room, _ in tracked]
        fence, message = self._new_fence(self._reader.fences(rooms))
        metas = await self._reader.positions(rooms, message)
        await self._wait_fence(fence)
        for (room, track), meta in zip(tracked, metas, strict=True):
            alive = meta.epoch is not None and meta.run == self._reader.run_id  # a restarted Redis ended every epoch
            if not alive or meta.epoch != track.epoch or track.offset < meta.top:
                self._tell_gap(room, track)
                track.epoch, track.offset = (meta.epoch, meta.top) if alive else (None, 0)
