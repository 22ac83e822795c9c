"""Per-room channels: a process hears a room's broadcasts only while it has members in the room.

Two apps in this test process stand for two server processes on one real redis-server; what
each process hears is read from Redis itself (``PUBSUB NUMSUB``), as an operator would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as aioredis
from test_backends import ask, chat_app
from test_scale_out import backend, eventually, sees

from websuckets.backends.redis import RedisBackend
from websuckets.backends.redis.codec import Broadcast, decode
from websuckets.exc import BackendUnavailable
from websuckets.testing import TestClient, TestConnection

pytestmark = pytest.mark.timeout(60)

LOBBY = "{websuckets}:r:lobby"


@pytest.fixture
async def two(redis_url: str) -> AsyncIterator[tuple[TestClient, TestClient]]:
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(TestClient(chat_app(backend(redis_url)), real=True))
        second = await stack.enter_async_context(TestClient(chat_app(backend(redis_url)), real=True))
        yield first, second


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def listeners(client: aioredis.Redis, channel: str) -> int:
    """How many processes hear ``channel``, as Redis counts them."""
    [(_, count)] = await client.pubsub_numsub(channel)
    return int(count)


async def listeners_become(client: aioredis.Redis, channel: str, wanted: int) -> None:
    deadline = asyncio.get_running_loop().time() + 5
    while (count := await listeners(client, channel)) != wanted:
        assert asyncio.get_running_loop().time() < deadline, f"{count} processes hear {channel}, not {wanted}"
        await asyncio.sleep(0.01)


async def join(connection: TestConnection, room: str) -> None:
    assert room in (await ask(connection, "join", {"room": room})).payload


async def test_a_process_hears_a_room_only_while_it_has_members_there(
    two: tuple[TestClient, TestClient], redis_client: aioredis.Redis
) -> None:
    """Joining subscribes the member's process to the room (before the join returns); the last member
    of a process leaving, or disconnecting, unsubscribes it."""
    first, second = two
    alice, bob, carol = await first.connect(), await second.connect(), await second.connect()
    assert await listeners(redis_client, LOBBY) == 0

    await join(alice, "lobby")
    assert await listeners(redis_client, LOBBY) == 1
    await join(bob, "lobby")
    await join(carol, "lobby")
    assert await listeners(redis_client, LOBBY) == 2

    await ask(bob, "leave", {"room": "lobby"})
    assert await listeners(redis_client, LOBBY) == 2  # carol is still there
    await carol.close()
    await listeners_become(redis_client, LOBBY, 1)
    await alice.close()
    await listeners_become(redis_client, LOBBY, 0)


async def test_a_broadcast_reaches_the_members_of_every_process_and_nobody_else(
    two: tuple[TestClient, TestClient],
) -> None:
    first, second = two
    alice, bob, carol = await first.connect(), await second.connect(), await second.connect()
    await join(alice, "lobby")
    await join(bob, "lobby")
    await join(carol, "elsewhere")
    await eventually(lambda: sees(first, bob) and sees(first, carol))

    assert (await ask(alice, "say", {"room": "lobby", "text": "hi"})).event == "sent"
    assert (await bob.receive()).payload == "hi"
    assert (await ask(alice, "say", {"text": "everyone"})).event == "sent"  # no room: the namespace's channel
    assert (await carol.receive()).payload == "everyone"  # not "hi" first: it was not for carol
    assert (await bob.receive()).payload == "everyone"


async def test_joining_and_leaving_in_a_row_ends_subscribed_as_the_last_join_says(
    two: tuple[TestClient, TestClient], redis_client: aioredis.Redis
) -> None:
    """However joins and leaves interleave with Redis's answers, a member hears the room after its join."""
    first, second = two
    alice, bob = await first.connect(), await second.connect()
    await join(alice, "lobby")
    for n in range(20):
        await join(bob, "lobby")
        assert (await ask(alice, "say", {"room": "lobby", "text": str(n)})).event == "sent"
        assert (await bob.receive()).payload == str(n)
        await ask(bob, "leave", {"room": "lobby"})
    await listeners_become(redis_client, LOBBY, 1)
    await join(bob, "lobby")
    assert await listeners(redis_client, LOBBY) == 2


async def test_room_subscriptions_come_back_after_the_connection_to_redis_is_lost(
    two: tuple[TestClient, TestClient], redis_client: aioredis.Redis
) -> None:
    first, second = two
    alice, bob = await first.connect(), await second.connect()
    await join(alice, "lobby")
    await join(bob, "lobby")
    before = [client.app.backend.health.reconnects for client in two]
    await redis_client.client_kill_filter(_type="pubsub")  # both processes' listeners

    def both_reconnected() -> bool:
        healths = [client.app.backend.health for client in two]
        return all(h.connected and h.reconnects > n for h, n in zip(healths, before, strict=True))

    await eventually(both_reconnected)
    await listeners_become(redis_client, LOBBY, 2)
    assert (await ask(alice, "say", {"room": "lobby", "text": "still here?"})).event == "sent"
    assert (await bob.receive()).payload == "still here?"


async def test_room_channels_off_publishes_on_the_namespace_channel_and_mixes_with_on(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    """``room_channels=False`` (a rolling upgrade from 0.1) broadcasts on ``{ns}:all``; a process with it
    and one without share rooms both ways."""
    old_style = RedisBackend(redis_url, heartbeat=0.2, dead_after=1.0, timeout=1.0, room_channels=False)
    async with (
        TestClient(chat_app(old_style), real=True) as first,
        TestClient(chat_app(backend(redis_url)), real=True) as second,
    ):
        alice, bob = await first.connect(), await second.connect()
        await join(alice, "lobby")
        await join(bob, "lobby")
        async with redis_client.pubsub() as tap:
            await tap.subscribe("{websuckets}:all")
            assert (await tap.get_message(timeout=1))["type"] == "subscribe"  # type: ignore[index]
            assert (await ask(alice, "say", {"room": "lobby", "text": "old"})).event == "sent"
            assert (await bob.receive()).payload == "old"
            heard = await tap.get_message(ignore_subscribe_messages=True, timeout=1)
            assert heard is not None
            assert isinstance(broadcast := decode(heard["data"]), Broadcast)
            assert broadcast.room == "lobby"
        assert (await ask(bob, "say", {"room": "lobby", "text": "new"})).event == "sent"
        assert (await alice.receive()).payload == "new"


async def test_a_join_forwarded_to_another_process_returns_once_that_process_hears_the_room(
    two: tuple[TestClient, TestClient], redis_client: aioredis.Redis
) -> None:
    """Session.join on a client of another process waits for that process's answer: a broadcast sent
    right after it returns reaches the client, though its process had to subscribe to the room first."""
    first, second = two
    for round_ in range(10):  # a fresh room each time: its first member, so a SUBSCRIBE each time
        alice = await first.connect()
        await eventually(lambda alice=alice: second.app.backend.get_online(alice.client_id) is not None)
        room = f"forwarded-{round_}"
        await second.app.backend.join(alice.client_id, room)
        assert await listeners(redis_client, f"{{websuckets}}:r:{room}") == 1  # alice's process, before the return
        await second.app.backend.broadcast('{"event":"said","payload":"welcome"}', room, frozenset())
        said = await alice.receive()
        assert (said.event, said.payload) == ("said", "welcome")
        await alice.close()


async def test_a_forwarded_join_whose_process_fails_to_join_raises_for_the_asker(
    two: tuple[TestClient, TestClient],
) -> None:
    """The client's process could not join it (its Redis write failed): the asking process gets
    backend_unavailable, not a silent success."""
    first, second = two
    alice = await first.connect()
    await eventually(lambda: second.app.backend.get_online(alice.client_id) is not None)

    async def refuse(channel: str, what: str) -> None:
        raise BackendUnavailable(f"{what} failed: the shared backend is unavailable, try again later")

    first.app.backend._link.hear = refuse  # type: ignore[method-assign]  # alice's process cannot subscribe
    with pytest.raises(BackendUnavailable, match="join failed"):
        await second.app.backend.join(alice.client_id, "lobby")
    assert "lobby" not in first.app.backend.presence.rooms_of(alice.client_id)
