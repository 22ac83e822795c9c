"""Room history across processes on a real Redis: resume anywhere, lose nothing, and say so when something is lost.

Two apps in this test process stand for two server processes (each its own RedisBackend,
listener and real server on 127.0.0.1), as in ``test_scale_out.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_server import RedisServer
from test_history import history_app, joined, resume, say, texts_until_position
from test_scale_out import backend, eventually

from websuckets import ClientEvent, History
from websuckets.backends.redis import RedisBackend
from websuckets.middleware import CommandTimeouts
from websuckets.testing import Received, TestClient, TestConnection

pytestmark = pytest.mark.timeout(120)

SIZE = 4
"""Messages each test room keeps: small, so that overflow is easy to reach."""


def apps(
    url: str, make_backend: Callable[[str], RedisBackend] = backend, timeout: float = 5
) -> tuple[TestClient, TestClient]:
    rooms = {"lobby": History(size=SIZE), "room:*": History(size=SIZE)}
    return (
        TestClient(history_app(make_backend(url), rooms), real=True, timeout=timeout),
        TestClient(history_app(make_backend(url), rooms), real=True, timeout=timeout),
    )


def patient_backend(url: str) -> RedisBackend:
    """For the soak: ordering and recovery under test, not fault detection. The event loop that runs
    both apps and their clients may stall for over a second on a busy machine (under coverage, say),
    which the fault tests' one-second timeout would count as Redis not answering."""
    return RedisBackend(url, heartbeat=0.5, dead_after=30.0, timeout=10.0)


@pytest.fixture
async def two(redis_url: str) -> AsyncIterator[tuple[TestClient, TestClient]]:
    """Two apps keeping history, each its own server, sharing one Redis."""
    async with AsyncExitStack() as stack:
        first, second = apps(redis_url)
        yield await stack.enter_async_context(first), await stack.enter_async_context(second)


def position_of(event: Received) -> tuple[str, int]:
    """The position a client keeps from a stamped room message or a ``websuckets position`` event."""
    source = event.payload if event.event == "websuckets position" else json.loads(event.raw)
    return source["epoch"], source["offset"]


async def test_a_client_resumes_on_another_process(two: tuple[TestClient, TestClient]) -> None:
    """Disconnected from A while B publishes, a client reconnects to B: exactly the missed ones, recovered."""
    first, second = two
    alice, bob = await first.connect(), await second.connect()
    epoch = (await joined(alice)).payload["epoch"]
    await joined(bob)
    await say(bob, "seen")
    assert position_of(await alice.receive()) == (epoch, 1)
    await alice.close()
    for text in ("a", "b", "c"):
        await say(bob, text)

    again = await second.connect()
    await resume(again, {"lobby": (epoch, 1)})
    await again.send("join", {"room": "lobby"})
    assert await texts_until_position(again) == (
        ["a", "b", "c"],
        {"room": "lobby", "epoch": epoch, "offset": 4, "recovered": True},
    )
    await say(bob, "live")
    assert (await again.receive()).payload == "live"


async def test_overflow_across_processes_is_not_recovered(two: tuple[TestClient, TestClient]) -> None:
    """More missed than the room keeps: nothing replayed, recovered false, live messages follow."""
    first, second = two
    alice, bob = await first.connect(), await second.connect()
    epoch = (await joined(alice)).payload["epoch"]
    await joined(bob)
    await alice.close()
    for number in range(SIZE + 1):
        await say(bob, str(number))
    again = await second.connect()
    await resume(again, {"lobby": (epoch, 0)})
    await again.send("join", {"room": "lobby"})
    texts, position = await texts_until_position(again)
    assert (texts, position["recovered"], position["offset"]) == ([], False, SIZE + 1)


async def test_redis_restarted_empty_ends_the_epoch(redis_server: RedisServer) -> None:
    """Redis restarted without persistence: members are told of the gap, and resuming is honestly not recovered."""
    async with AsyncExitStack() as stack:
        first, second = apps(redis_server.url)
        first, second = await stack.enter_async_context(first), await stack.enter_async_context(second)
        alice, bob = await first.connect(), await second.connect()
        epoch = (await joined(alice)).payload["epoch"]
        await joined(bob)
        await say(bob, "before")
        await alice.receive()

        redis_server.kill()
        redis_server.start()
        for member in (alice, bob):  # the position check after reconnecting finds the room gone
            gap = await member.receive(timeout=10)
            assert (gap.event, gap.payload) == ("websuckets gap", {"room": "lobby"})

        await say(bob, "after")
        assert (await alice.receive()).payload == "after"  # still a member: live traffic goes on
        await alice.send("websuckets resume", {"rooms": {"lobby": {"epoch": epoch, "offset": 1}}})
        texts, position = await texts_until_position(alice)
        assert (texts, position["recovered"]) == ([], False)
        assert position["epoch"] != epoch


async def test_a_lost_message_is_noticed_and_not_recovered(two: tuple[TestClient, TestClient], redis_url: str) -> None:
    """An offset that never arrives (a message lost before pub/sub) makes members resume; the hole is reported."""
    first, second = two
    alice, bob = await first.connect(), await second.connect()
    epoch = (await joined(alice)).payload["epoch"]
    # bob publishes without being a member
    await say(bob, "one")
    await alice.receive()
    meta = first.app.backend.keys.history_meta("lobby")  # type: ignore[attr-defined]
    with redis.Redis.from_url(redis_url) as raw:
        raw.hincrby(meta, "s", 1)  # offset 2 is taken but never kept nor published
    await say(bob, "three")
    gap = await alice.receive()
    assert (gap.event, gap.payload) == ("websuckets gap", {"room": "lobby"})
    assert (await alice.receive()).payload == "three"  # live traffic goes on
    assert first.app.backend.health.history_gaps == 1

    await alice.send("websuckets resume", {"rooms": {"lobby": {"epoch": epoch, "offset": 1}}})
    texts, position = await texts_until_position(alice)
    assert (texts, position["recovered"], position["offset"]) == ([], False, 3)


async def test_live_messages_during_a_resume_are_neither_lost_nor_doubled(two: tuple[TestClient, TestClient]) -> None:
    """While a member resumes on A, B keeps publishing: dropping what it already has (as clients do), it
    gets every offset once, in order, and its position event stands exactly after the replay."""
    first, second = two
    watcher, bob = await first.connect(), await second.connect()
    epoch = (await joined(watcher)).payload["epoch"]
    known = 0
    for round_ in range(5):

        async def publish(round_: int = round_) -> int:
            for number in range(30):
                position = await say(bob, f"r{round_}-{number}")
            assert position is not None
            return position.offset

        publishing = asyncio.create_task(publish())
        await watcher.send("websuckets resume", {"rooms": {"lobby": {"epoch": epoch, "offset": max(known - 3, 0)}}})
        recovered_at, replied, last = None, False, known + 30
        while known < last or not replied:
            event = await watcher.receive()
            if event.event == "said":
                offset = position_of(event)[1]
                if offset <= known:
                    continue  # already shown: a client drops it
                assert offset == known + 1, f"offset {offset} after {known}: a hole"
                known = offset
            elif event.event == "websuckets position":
                assert (event.payload["recovered"], event.payload["offset"]) == (True, known)
                recovered_at = known
            else:
                replied = event.event == "websuckets resume"
        assert recovered_at is not None
        assert await publishing == last


async def test_a_client_of_another_process_joined_to_a_history_room_gets_its_position(
    two: tuple[TestClient, TestClient],
) -> None:
    """A join of a client connected elsewhere is done by its own process, position included."""
    first, second = two
    bob = await second.connect()
    await eventually(lambda: first.app.backend.get_online(bob.client_id) is not None)
    await first.app.backend.join(bob.client_id, "room:1")
    event = await bob.receive()
    assert (event.event, event.payload["room"], event.payload["recovered"]) == ("websuckets position", "room:1", None)


# random interleavings of publishes, disconnects and resumes


@dataclass
class Reader:
    """What a client app shows of one room, and the position it would resume from."""

    shown: list[str] = field(default_factory=list)
    position: tuple[str, int] = ("", 0)
    connection: TestConnection | None = None


Step = tuple[str, Any]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(1, SIZE + 2)),
        st.tuples(st.just("drop"), st.none()),
        st.tuples(st.just("resume"), st.integers(0, 1)),
        st.tuples(st.just("resume while publishing"), st.integers(1, 8)),
    ),
    min_size=1,
    max_size=12,
)


async def play(clients: tuple[TestClient, TestClient], room: str, scenario: list[Step]) -> None:
    """Drive one scenario; ``published`` is the room's truth, ``reader.shown`` what a resuming client shows."""
    publisher = await clients[1].connect()
    published: list[str] = []
    reader = Reader(connection=await clients[0].connect())
    reader.position = position_of(await joined(reader.connection, room))

    async def publish(count: int) -> None:
        for _ in range(count):
            text = f"m{len(published)}"
            published.append(text)
            await say(publisher, text, room)

    async def read_live(connection: TestConnection, upto: int) -> None:
        while len(reader.shown) < upto:
            event = await connection.receive()
            assert event.event == "said", event
            reader.shown.append(event.payload)
            reader.position = position_of(event)

    for action, argument in scenario:
        if action == "publish":
            await publish(argument)
            if reader.connection is not None:
                await read_live(reader.connection, len(published))
        elif action == "drop" and reader.connection is not None:
            await reader.connection.close()
            reader.connection = None
        elif action.startswith("resume"):
            if reader.connection is not None:
                await reader.connection.close()
            connection = reader.connection = await clients[argument if action == "resume" else 0].connect()
            before = len(published)
            publishing = asyncio.create_task(publish(argument if action != "resume" else 0))
            epoch, offset = reader.position
            await connection.send("websuckets resume", {"rooms": {room: {"epoch": epoch, "offset": offset}}})
            await connection.receive()  # the reply: waiting for the join
            await connection.send("join", {"room": room})
            replayed, position = await texts_until_position(connection)
            top = position["offset"]
            assert before <= top <= len(published), (before, position, len(published))
            assert position["recovered"] is (top - offset <= SIZE), "true exactly when nothing is lost"
            if position["recovered"]:
                assert replayed == published[offset:top], "the missed ones, in order"
                reader.shown += replayed
            else:
                assert replayed == [], "nothing replayed when not recovered"
                reader.shown = published[:top]  # the app reloads the room's state
            reader.position = (position["epoch"], top)
            await publishing
            await read_live(connection, len(published))
    if reader.connection is not None:
        await publish(1)  # a last message: anything doubled would arrive before it
        await read_live(reader.connection, len(published))
        assert reader.shown == published, "shown once each, in order"
    await publisher.close()
    if reader.connection is not None:
        await reader.connection.close()


async def interleavings(redis_url: str, examples: int) -> None:
    scenarios: list[list[Step]] = []

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(steps)
    def collect(scenario: list[Step]) -> None:
        scenarios.append(scenario)  # collected, then driven below in the test's own loop

    collect()
    async with AsyncExitStack() as stack:
        first, second = apps(redis_url, patient_backend, timeout=30)
        clients = await stack.enter_async_context(first), await stack.enter_async_context(second)
        for number, scenario in enumerate(scenarios):
            try:
                await play(clients, f"room:{number}", scenario)
            except AssertionError as exc:
                health = [client.app.backend.health for client in clients]
                raise AssertionError(f"scenario {number} {scenario} (backends: {health}): {exc}") from exc


async def test_random_interleavings_never_lose_double_or_lie(redis_url: str) -> None:
    """Generated publishes, disconnects and resumes (on either process, some while publishing): recovered
    is true exactly when nothing was lost, and then the client has every message once, in order."""
    await interleavings(redis_url, examples=40)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_random_interleavings_long(redis_url: str) -> None:
    """The same, 400 scenarios."""
    await interleavings(redis_url, examples=400)


async def test_a_process_configured_without_the_rooms_history_still_delivers(redis_url: str) -> None:
    """During a rolling change of configuration, members on a process without the room's history still hear it."""
    async with (
        TestClient(history_app(backend(redis_url), {"lobby": History(size=SIZE)}), real=True) as keeping,
        TestClient(history_app(backend(redis_url), {"elsewhere": History()}), real=True) as plain,
    ):
        listener, speaker = await plain.connect(), await keeping.connect()
        await listener.send("join", {"room": "lobby"})
        await eventually(lambda: listener.client_id in keeping.app.backend.room_members("lobby"))
        await say(speaker, "hello")
        heard = await listener.receive()
        assert (heard.payload, position_of(heard)[1]) == ("hello", 1)


async def test_a_join_cancelled_while_catching_up_leaves_the_member_live(redis_url: str) -> None:
    """A join whose command times out while this process waits for its read's fence: the member, in the
    room by then, still gets the live messages that follow."""
    app = history_app(backend(redis_url), {"lobby": History(size=SIZE)})
    app.command_timeouts = CommandTimeouts(0.3)
    async with TestClient(app, real=True, timeout=5) as client:
        bob, alice = await client.connect(), await client.connect()
        await joined(bob)
        link, sync = app.backend._link, app.backend._sync  # type: ignore[attr-defined]
        handle = link.on_message
        link.on_message = lambda data: None if '"t":"f"' in data else handle(data)
        await alice.send("join", {"room": "lobby"})
        assert (await alice.receive()).error_name == "command_timeout"
        link.on_message = handle
        await say(bob, "live")
        assert (await alice.receive()).payload == "live"
        assert sync.tracks["lobby"].catching_up == {}
        assert sync.fences == {}


async def test_redis_back_with_older_data_is_not_recovered(redis_server: RedisServer) -> None:
    """Redis restarted from an older snapshot would hand out offsets again: a restart ends every epoch."""
    rooms = {"lobby": History(size=10)}
    async with TestClient(history_app(backend(redis_server.url), rooms), real=True, timeout=5) as client:
        alice, bob = await client.connect(), await client.connect()
        epoch = (await joined(alice)).payload["epoch"]
        await joined(bob)
        await say(bob, "m1")
        await alice.receive()
        with redis.Redis.from_url(redis_server.url) as raw:
            raw.save()  # the snapshot Redis comes back with: offset 1
        for text in ("m2", "m3"):
            await say(bob, text)
            await alice.receive()
        await alice.close()
        redis_server.kill()
        redis_server.start()
        assert (await bob.receive(timeout=10)).event == "websuckets gap"
        for text in ("x2", "x3", "x4"):
            await say(bob, text)
        again = await client.connect()
        await resume(again, {"lobby": (epoch, 3)})
        await again.send("join", {"room": "lobby"})
        texts, position = await texts_until_position(again)
        assert (texts, position["recovered"]) == ([], False)
        assert position["epoch"] != epoch


async def test_a_join_forwarded_to_another_process_hears_the_next_broadcast(
    two: tuple[TestClient, TestClient],
) -> None:
    """Joined from another process, then a broadcast at once: the client gets it, after its position."""
    first, second = two
    alice = await first.connect()
    await eventually(lambda: second.app.backend.get_online(alice.client_id) is not None)
    await second.app.backend.join(alice.client_id, "lobby")
    await second.app.backend.broadcast(ClientEvent("said", "welcome"), "lobby", frozenset())
    events = [await alice.receive(), await alice.receive()]  # in either order: the read came before or after
    assert sorted((event.event, event.payload == "welcome") for event in events) == [
        ("said", True),
        ("websuckets position", False),
    ]


async def test_a_refusal_only_an_operator_can_fix_is_named_for_the_client(redis_server: RedisServer) -> None:
    """Redis refusing a history write for want of a permission (ACL without XADD) answers
    backend_misconfigured, and for want of memory (maxmemory with noeviction) backend_full, not
    "try again later"; a plain broadcast, which needs neither, still works."""
    admin = redis.asyncio.Redis(port=redis_server.port)
    await admin.execute_command("ACL", "SETUSER", "app", "on", ">app-secret", "~*", "&*", "+@all", "-xadd")
    url = f"redis://app:app-secret@127.0.0.1:{redis_server.port}/0"
    async with TestClient(history_app(RedisBackend(url, heartbeat=0.2, timeout=1.0)), real=True) as client:
        alice, bob = await client.connect(), await client.connect()
        await joined(alice, "chat:1")
        await joined(bob, "chat:1")
        await alice.send("say", {"room": "chat:1", "text": "kept?"})
        refused = await alice.receive()
        assert (refused.error_name, refused.payload["details"]) == (
            "backend_misconfigured",
            "broadcast failed: the shared backend refused it, which an operator must fix",
        )
        assert "xadd" not in refused.raw
        assert "127.0.0.1" not in refused.raw
        assert client.app.backend.health.last_error == "ResponseError"

        await admin.execute_command("ACL", "SETUSER", "app", "+xadd")
        await joined(alice, "chat:2")
        await admin.config_set("maxmemory", "1")
        try:
            await alice.send("say", {"room": "chat:2", "text": "no room"})
            assert (await alice.receive()).error_name == "backend_full"
            assert client.app.backend.health.last_error == "OutOfMemoryError"
            assert await say(alice, "plain", "plain") is None  # PUBLISH needs no memory: it goes on
        finally:
            await admin.config_set("maxmemory", "0")
        assert await say(alice, "kept", "chat:2") is not None
    await admin.aclose()


async def test_a_refused_append_leaves_no_gap(redis_server: RedisServer) -> None:
    """A history write that Redis refuses halfway through its script (here XADD, for want of a permission)
    takes no offset: once it is allowed, the next message has the next offset and members see no gap."""
    admin = redis.asyncio.Redis(port=redis_server.port)
    await admin.execute_command("ACL", "SETUSER", "app", "on", ">app-secret", "~*", "&*", "+@all")
    url = f"redis://app:app-secret@127.0.0.1:{redis_server.port}/0"
    async with TestClient(history_app(RedisBackend(url, heartbeat=0.2, timeout=1.0)), real=True) as client:
        alice, bob = await client.connect(), await client.connect()
        epoch = (await joined(alice, "chat:1")).payload["epoch"]
        await joined(bob, "chat:1")
        assert await say(alice, "first", "chat:1") == (epoch, 1)
        assert (await bob.receive()).payload == "first"

        await admin.execute_command("ACL", "SETUSER", "app", "-xadd")
        await alice.send("say", {"room": "chat:1", "text": "refused"})
        assert (await alice.receive()).error_name == "backend_misconfigured"
        await admin.execute_command("ACL", "SETUSER", "app", "+xadd")

        assert await say(alice, "second", "chat:1") == (epoch, 2)
        event = await bob.receive()
        assert (event.event, event.payload) == ("said", "second")  # no "websuckets gap" before it
        assert client.app.backend.health.history_gaps == 0
    await admin.aclose()
