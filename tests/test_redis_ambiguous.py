"""A history room's broadcast whose answer from Redis was lost: sent again with the same id, kept once.

The first app reaches Redis through a `CuttingProxy` that lets the broadcast's command reach Redis
and run, then closes the connection before the answer: the sender's process cannot know whether
it ran. The second app, connected straight to Redis, holds the member who must get it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest
from redis_proxy import CuttingProxy
from redis_server import RedisServer
from test_history import history_app, joined, resume, say, texts_until_position
from test_scale_out import eventually

from websuckets.backends.redis import RedisBackend
from websuckets.testing import TestClient, TestConnection

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 1.0
"""The backends' ``timeout``: the sender's process sends an unanswered append again within twice this."""


@dataclass
class Room:
    proxy: CuttingProxy
    sender: TestConnection
    """In the lobby, on the app behind the proxy."""
    member: TestConnection
    """In the lobby, on the app connected straight to Redis."""
    behind: TestClient
    other: TestClient
    epoch: str


@pytest.fixture
async def room(redis_server: RedisServer) -> AsyncIterator[Room]:
    proxy = CuttingProxy(redis_server.port)
    await proxy.start()
    async with AsyncExitStack() as stack:
        stack.push_async_callback(proxy.close)
        behind = RedisBackend(proxy.url, heartbeat=0.2, dead_after=5.0, timeout=TIMEOUT)
        straight = RedisBackend(redis_server.url, heartbeat=0.2, dead_after=5.0, timeout=TIMEOUT)
        first = await stack.enter_async_context(TestClient(history_app(behind), real=True, timeout=5))
        second = await stack.enter_async_context(TestClient(history_app(straight), real=True, timeout=5))
        sender, member = await first.connect(), await second.connect()
        epoch = (await joined(sender)).payload["epoch"]
        await joined(member)
        yield Room(proxy, sender, member, first, second, epoch)


async def kept(room: Room) -> list[str]:
    """The lobby's history, as a client resuming from its start recovers it."""
    reader = await room.other.connect()
    await resume(reader, {"lobby": (room.epoch, 0)})
    await reader.send("join", {"room": "lobby"})
    texts, position = await texts_until_position(reader)
    assert position["recovered"], position
    return texts


async def test_an_append_whose_answer_was_lost_is_sent_again_and_kept_once(room: Room) -> None:
    """The connection drops after Redis ran the append: the backend sends it again with the same id,
    Redis answers its offset without keeping or publishing it again, and the sender sees success."""
    room.proxy.cut_at(b"kept-once")
    assert await say(room.sender, "kept-once") == (room.epoch, 1)
    assert (room.proxy.cuts, room.proxy.seen) == (1, 2)  # cut after it ran, then sent again

    assert (await room.member.receive()).payload == "kept-once"
    assert await say(room.sender, "next") == (room.epoch, 2)
    assert (await room.member.receive()).payload == "next"  # not a second "kept-once" before it
    assert await kept(room) == ["kept-once", "next"]


async def test_an_append_unanswered_even_when_sent_again_is_outcome_unknown(room: Room) -> None:
    """The connection drops after Redis ran the append, and Redis stays unreachable: the sender learns
    backend_outcome_unknown within a bounded time, not backend_unavailable (which says it did not
    happen); the message is kept and delivered once all the same. While Redis is known to be away, a
    broadcast is not sent at all: backend_unavailable."""
    room.proxy.cut_at(b"maybe", refuse=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await room.sender.send("say", {"room": "lobby", "text": "maybe"})
    unknown = await room.sender.receive_error("backend_outcome_unknown", timeout=10)
    assert loop.time() - started < 3 * TIMEOUT + 1
    said = "broadcast: the shared backend did not answer, so it may or may not have happened"
    assert unknown.payload["details"] == said
    assert room.proxy.cuts == 1

    await room.sender.send("say", {"room": "lobby", "text": "refused"})
    await room.sender.receive_error("backend_unavailable", timeout=5)

    await room.proxy.start()
    assert (await room.member.receive()).payload == "maybe"
    await eventually(lambda: room.behind.app.backend.health.connected)
    assert await say(room.sender, "next") == (room.epoch, 2)
    assert (await room.member.receive()).payload == "next"
    assert await kept(room) == ["maybe", "next"]
