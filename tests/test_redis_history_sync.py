"""History rooms across processes: catch-up, fences and gaps, with a fake reader instead of Redis."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from uuid import UUID, uuid4

import pytest
from websockets.asyncio.connection import Connection
from websockets.protocol import Protocol, Side

from websuckets import History, Position
from websuckets.backends import BackendHealth
from websuckets.backends.redis.codec import Fence, decode
from websuckets.backends.redis.history_sync import HistorySync, RoomMeta, Stored

EPOCH = "e" * 16


class Frames(asyncio.Transport):
    """A transport that decodes what is written to it, as the client would read it."""

    def __init__(self, got: list[dict[str, Any]]) -> None:
        super().__init__()
        self.reader = Protocol(Side.CLIENT, max_size=None)
        self.got = got

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.reader.receive_data(bytes(data))
        self.got += [json.loads(frame.data) for frame in self.reader.events_received()]

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


class Socket(Connection):
    """What delivery writes to: an open websockets connection; every message a member got, decoded."""

    def __init__(self) -> None:
        super().__init__(Protocol(Side.SERVER))
        self.got: list[dict[str, Any]] = []
        self.connection_made(Frames(self.got))

    def said(self) -> list[Any]:
        """(event, payload or offset) of what it got, in order."""
        return [
            (event["event"], event.get("offset") if event["event"] == "said" else event["payload"])
            for event in self.got
        ]


class Member:
    def __init__(self) -> None:
        self.client_id = uuid4()
        self.socket = Socket()


class Reader:
    """A room's history held by the test; each read answers it, then "publishes" the fence, as Redis would."""

    def __init__(self, entries: Sequence[int] = (), top: int = 0, now: int = 1_000_000) -> None:
        self.run_id = "run-1"
        self.entries = [(offset, None, said(offset)) for offset in entries]
        self.top = top
        self.now = now
        self.meta = RoomMeta(EPOCH, top, "run-1")
        self.hear_fence = True
        self.during_read: Callable[[], None] = lambda: None
        """What this process hears between the read and its fence (live messages published meanwhile)."""
        self.sync: HistorySync

    async def read(self, room: str, history: History, since: Position | None, fence: str) -> Stored:
        self.during_read()
        self.publish(fence)
        return Stored(EPOCH, self.top, self.now, list(self.entries))

    def fences(self, rooms: Sequence[str]) -> int:
        return 1

    async def positions(self, rooms: Sequence[str], fence: str) -> list[RoomMeta]:
        self.publish(fence)
        return [self.meta for _ in rooms]

    def publish(self, fence: str) -> None:
        message = decode(fence)
        assert isinstance(message, Fence)
        if self.hear_fence:
            asyncio.get_running_loop().call_soon(self.sync.fence_heard, message.key)


def said(offset: int) -> str:
    return json.dumps({"event": "said", "payload": f"m{offset}"})


class Room:
    """One history room, ``lobby``, with members on this process and a sync over a fake reader."""

    def __init__(self, reader: Reader, history: History | None = None) -> None:
        self.members: list[Member] = []
        self.health = BackendHealth()
        self.reader = reader
        self.sync = reader.sync = HistorySync(
            reader,
            timeout=0.2,
            health=self.health,
            history_of=lambda room: history or History(size=10),
            members_here=self.members_here,
            is_member=lambda user, room: user in self.members,
        )

    def members_here(self, room: str) -> Iterator[Any]:
        return iter(list(self.members))

    def joined(self) -> Member:
        member = Member()
        self.members.append(member)
        return member

    async def catch_up(self, member: Member, since: Position | None) -> bool:
        catch_up = self.sync.start_catch_up(member, "lobby")  # type: ignore[arg-type]
        return await self.sync.catch_up(member, "lobby", since, catch_up)  # type: ignore[arg-type]

    def heard(self, offset: int, epoch: str = EPOCH, exclude: frozenset[UUID] = frozenset()) -> None:
        self.sync.heard("lobby", exclude, Position(epoch, offset), said(offset))


def position(top: int, recovered: bool | None) -> tuple[str, Any]:
    return ("websuckets position", {"room": "lobby", "epoch": EPOCH, "offset": top, "recovered": recovered})


GAP = ("websuckets gap", {"room": "lobby"})


async def test_a_resume_that_missed_nothing_gets_the_missed_then_the_live() -> None:
    """Resumed from offset 2 of 4: messages 3 and 4, its position (recovered), then 5, heard during the read."""
    room = Room(Reader(entries=[3, 4], top=4))
    member = room.joined()
    room.reader.during_read = lambda: room.heard(5)
    assert await room.catch_up(member, Position(EPOCH, 2)) is True
    assert member.socket.said() == [("said", 3), ("said", 4), position(4, True), ("said", 5)]
    assert room.sync.tracks["lobby"].catching_up == {}
    assert room.sync.fences == {}
    room.heard(6)
    assert member.socket.said()[-1] == ("said", 6)
    assert room.health.history_gaps == 0


async def test_a_plain_join_gets_its_position_and_what_was_published_meanwhile() -> None:
    """Joined without a position: nothing replayed, its position, then the live messages held for it."""
    room = Room(Reader(entries=[1, 2], top=2))
    member = room.joined()
    room.reader.during_read = lambda: (room.heard(3), room.heard(4))
    assert await room.catch_up(member, None) is False
    assert member.socket.said() == [position(2, None), ("said", 3), ("said", 4)]


async def test_history_that_lost_messages_is_not_recovered() -> None:
    """Offset 3 of the resumed range is gone: nothing replayed, recovered false."""
    room = Room(Reader(entries=[4, 5], top=5))
    member = room.joined()
    assert await room.catch_up(member, Position(EPOCH, 2)) is False
    assert member.socket.said() == [position(5, False)]


async def test_expired_entries_are_left_out() -> None:
    """With a ttl, an entry kept longer ago than the ttl is not replayed, and the resume is not recovered."""
    reader = Reader(top=2, now=100_000)
    reader.entries = [(1, 50_000, said(1)), (2, 99_000, said(2))]
    room = Room(reader, History(size=10, ttl=10))
    member = room.joined()
    assert await room.catch_up(member, Position(EPOCH, 0)) is False
    member2 = room.joined()
    assert await room.catch_up(member2, Position(EPOCH, 1)) is True
    assert member2.socket.said() == [("said", 2), position(2, True)]


async def test_a_skipped_offset_tells_the_members_here_of_a_gap() -> None:
    """Heard 1, then 3: message 2 was lost on its way; the members here are told to resume, and it is counted."""
    room = Room(Reader(top=0))
    member = room.joined()
    await room.catch_up(member, None)
    room.heard(1)
    room.heard(3)
    assert member.socket.said() == [position(0, None), ("said", 1), GAP, ("said", 3)]
    assert room.health.history_gaps == 1


async def test_a_new_epoch_is_a_gap_and_an_older_message_is_not() -> None:
    """Another epoch means the history was lost; an offset already covered (a replay's) is nothing lost."""
    room = Room(Reader(top=3))
    member = room.joined()
    await room.catch_up(member, None)
    room.heard(2)
    assert room.health.history_gaps == 0
    room.heard(1, epoch="other")
    assert room.health.history_gaps == 1
    assert member.socket.said()[-2] == GAP


async def test_a_gap_during_a_catch_up_is_told_after_the_replay() -> None:
    """Messages lost while a member catches up: it gets its replay and position first, then the gap."""
    room = Room(Reader(entries=[1], top=1))
    first = room.joined()
    await room.catch_up(first, None)
    second = room.joined()
    room.reader.during_read = lambda: room.heard(3)  # 2 never arrives
    await room.catch_up(second, Position(EPOCH, 0))
    assert second.socket.said() == [("said", 1), position(1, True), ("said", 3), GAP]
    assert first.socket.said()[-2:] == [GAP, ("said", 3)]


async def test_a_fence_that_never_comes_back_tells_the_member_to_resume(caplog: pytest.LogCaptureFixture) -> None:
    """Past the timeout without the fence: the member gets what was read, then a gap event; logged."""
    room = Room(Reader(entries=[1], top=1))
    room.reader.hear_fence = False
    member = room.joined()
    with caplog.at_level(logging.WARNING, "websuckets.redis"):
        assert await room.catch_up(member, Position(EPOCH, 0)) is True
    assert member.socket.said() == [("said", 1), position(1, True), GAP]
    assert "a fence on this process's channel did not come back within 0.2 s" in caplog.text
    await asyncio.sleep(0)  # a future's done callbacks run soon after
    assert room.sync.fences == {}


async def test_a_failed_read_releases_the_live_messages_held() -> None:
    """The read fails (Redis away): what was held for the member goes out as it is, and the error rises."""
    room = Room(Reader())
    member = room.joined()

    async def failing(*args: Any) -> Stored:
        room.heard(1)
        raise ConnectionError("Redis away")

    room.reader.read = failing  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await room.catch_up(member, None)
    assert member.socket.said() == [("said", 1)]
    assert room.sync.tracks["lobby"].catching_up == {}
    await asyncio.sleep(0)
    assert room.sync.fences == {}


async def test_a_member_gone_during_its_catch_up_gets_nothing() -> None:
    """A member that left while the history was read is not sent the replay."""
    room = Room(Reader(entries=[1], top=1))
    member = room.joined()
    room.reader.during_read = lambda: room.members.remove(member)
    assert await room.catch_up(member, Position(EPOCH, 0)) is False
    assert member.socket.said() == []


async def test_excluded_members_do_not_get_the_message() -> None:
    """A room message excluding a member reaches the others here only."""
    room = Room(Reader(top=0))
    alice, bob = room.joined(), room.joined()
    await room.catch_up(alice, None)
    await room.catch_up(bob, None)
    room.heard(1, exclude=frozenset({alice.client_id}))
    assert (alice.socket.said()[-1], bob.socket.said()[-1]) == (position(0, None), ("said", 1))


@pytest.mark.parametrize(
    ("meta", "gap", "after"),
    [
        (RoomMeta(EPOCH, 2, "run-1"), False, (EPOCH, 2)),
        (RoomMeta(EPOCH, 4, "run-1"), True, (EPOCH, 4)),
        (RoomMeta("another", 1, "run-1"), True, ("another", 1)),
        (RoomMeta(EPOCH, 2, "run-0"), True, (None, 0)),
        (RoomMeta(None, 0, None), True, (None, 0)),
    ],
    ids=["nothing lost", "missed messages", "another epoch", "Redis restarted", "history gone"],
)
async def test_positions_are_checked_after_a_reconnection(
    meta: RoomMeta, gap: bool, after: tuple[str | None, int]
) -> None:
    """After a reconnection each tracked room's position in Redis is compared with the last heard."""
    room = Room(Reader(top=0))
    member = room.joined()
    await room.catch_up(member, None)
    room.heard(1)
    room.heard(2)
    room.reader.meta = meta
    await room.sync.check_positions()
    assert (room.health.history_gaps, member.socket.said()[-1] == GAP) == (int(gap), gap)
    track = room.sync.tracks["lobby"]
    assert (track.epoch, track.offset) == after


async def test_a_room_is_untracked_once_its_last_member_here_leaves() -> None:
    """Tracking stops with the last member here; a message of the room then reaches nobody and checks nothing."""
    room = Room(Reader(top=0))
    member = room.joined()
    await room.catch_up(member, None)
    room.sync.untrack_if_empty("lobby")
    assert room.sync.tracked(["lobby", "other"]) == ["lobby"]
    room.members.clear()
    room.sync.untrack_if_empty("lobby")
    assert room.sync.tracks == {}
    room.heard(5)
    assert room.health.history_gaps == 0
