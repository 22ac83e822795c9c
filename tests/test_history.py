"""Room history and resume: the same behaviour on MemoryBackend and RedisBackend (a real redis-server).

A client that reconnects and resumes a room from its last position gets exactly what it
missed, in order, then ``recovered: true``; when anything is gone it gets nothing replayed
and ``recovered: false``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, History, Position, Session, WebSuckets
from websuckets.backends import Backend
from websuckets.backends.memory import MemoryBackend
from websuckets.exc import AppStateError
from websuckets.testing import Received, TestClient, TestConnection


class Room(BaseModel):
    room: str


class Say(BaseModel):
    room: str
    text: str


def history_app(backend: Backend, history: dict[str, History] | None = None) -> WebSuckets:
    """Rooms where ``join`` and ``say`` are the app's own commands; ``lobby`` and ``chat:*`` keep history."""
    if history is None:
        history = {"lobby": History(size=5), "chat:*": History(size=5)}
    app = WebSuckets(backend=backend, history=history)
    group = CommandGroup()

    @group.command("join")
    async def join(socket: ServerConnection, model: Room) -> None:
        await Session.join(socket.id, model.room)

    @group.command("leave")
    async def leave(socket: ServerConnection, model: Room) -> None:
        await Session.leave(socket.id, model.room)

    @group.command("say")
    async def say(socket: ServerConnection, model: Say) -> None:
        position = await Session.broadcast(ClientEvent("said", model.text), room=model.room, exclude=socket.id)
        await socket.send(ClientEvent("sent", None if position is None else list(position)))

    app.include_command_group(group)
    return app


@pytest.fixture
async def client(make_backend: Callable[[], Backend]) -> AsyncIterator[TestClient]:
    async with TestClient(history_app(make_backend()), real=True) as client:
        yield client


async def joined(connection: TestConnection, room: str = "lobby") -> Received:
    """Join ``room`` and return its ``websuckets position`` event."""
    await connection.send("join", {"room": room})
    event = await connection.receive()
    assert event.event == "websuckets position", event
    return event


async def say(connection: TestConnection, text: str, room: str = "lobby") -> Position | None:
    """Broadcast ``text`` to the others in ``room``: its position, ``None`` in a room without history."""
    await connection.send("say", {"room": room, "text": text})
    sent = await connection.receive()
    assert sent.event == "sent", sent
    return None if sent.payload is None else Position(*sent.payload)


async def resume(connection: TestConnection, positions: dict[str, Any]) -> Received:
    """Send ``websuckets resume`` and return its reply."""
    rooms = {room: {"epoch": epoch, "offset": offset} for room, (epoch, offset) in positions.items()}
    return await connection.request("websuckets resume", {"rooms": rooms})


async def texts_until_position(connection: TestConnection) -> tuple[list[str], dict[str, Any]]:
    """The ``said`` texts received before the next ``websuckets position``, and that event's payload."""
    texts = []
    while (event := await connection.receive()).event != "websuckets position":
        assert event.event == "said", event
        texts.append(event.payload)
    return texts, event.payload


async def test_history_room_messages_carry_their_position(client: TestClient) -> None:
    """A plain join gets the room's position; each message adds room, epoch and the next offset."""
    alice, bob = await client.connect(), await client.connect()
    start = (await joined(alice)).payload
    assert (start["room"], start["offset"], start["recovered"]) == ("lobby", 0, None)
    await joined(bob)
    assert await say(bob, "one") == Position(start["epoch"], 1)
    assert await say(bob, "two") == Position(start["epoch"], 2)
    first, second = await alice.receive(), await alice.receive()
    assert first.raw == (f'{{"event":"said","payload":"one","room":"lobby","epoch":"{start["epoch"]}","offset":1}}')
    assert (second.payload, second.raw.endswith('"offset":2}')) == ("two", True)


async def test_reconnected_client_gets_exactly_what_it_missed(client: TestClient) -> None:
    """Resume before re-joining: the join replays the missed messages in order, then recovered true, then live."""
    alice, bob = await client.connect(), await client.connect()
    await joined(bob)
    await joined(alice)
    await say(bob, "seen")
    seen = await alice.receive()
    last = (seen.raw.split('"epoch":"')[1].split('"')[0], 1)
    await alice.close()
    for text in ("a", "b", "c"):
        await say(bob, text)

    again = await client.connect()
    assert (await resume(again, {"lobby": last})).payload == {"waiting": ["lobby"]}
    await again.send("join", {"room": "lobby"})
    texts, position = await texts_until_position(again)
    assert texts == ["a", "b", "c"]
    assert position == {"room": "lobby", "epoch": last[0], "offset": 4, "recovered": True}
    await say(bob, "live")
    assert (await again.receive()).payload == "live"


async def test_member_resumes_at_once(client: TestClient) -> None:
    """A member that resumes gets the messages after its position before the command's reply."""
    alice, bob = await client.connect(), await client.connect()
    epoch = (await joined(alice)).payload["epoch"]
    await joined(bob)
    for text in ("a", "b"):
        await say(bob, text)
        await alice.receive()
    await alice.send("websuckets resume", {"rooms": {"lobby": {"epoch": epoch, "offset": 0}}}, id=9)
    texts, position = await texts_until_position(alice)
    assert (texts, position["recovered"], position["offset"]) == (["a", "b"], True, 2)
    reply = await alice.receive()
    assert (reply.event, reply.payload, reply.id) == ("websuckets resume", {"waiting": []}, 9)


async def test_nothing_missed_is_recovered_with_nothing_replayed(client: TestClient) -> None:
    """Resuming from the room's current position recovers, with no message replayed."""
    alice = await client.connect()
    start = (await joined(alice)).payload
    again = await client.connect()
    await resume(again, {"lobby": (start["epoch"], 0)})
    await again.send("join", {"room": "lobby"})
    assert await texts_until_position(again) == ([], {**start, "recovered": True})


async def test_overflowed_history_is_not_recovered(client: TestClient) -> None:
    """When more messages were missed than the room keeps, nothing is replayed and recovered is false."""
    alice, bob = await client.connect(), await client.connect()
    epoch = (await joined(alice)).payload["epoch"]
    await joined(bob)
    await alice.close()
    for number in range(6):  # the room keeps 5
        await say(bob, str(number))
    again = await client.connect()
    await resume(again, {"lobby": (epoch, 0)})
    await again.send("join", {"room": "lobby"})
    assert await texts_until_position(again) == ([], {"room": "lobby", "epoch": epoch, "offset": 6, "recovered": False})


async def test_another_epoch_is_not_recovered(client: TestClient) -> None:
    """A position from another epoch (history lost since) recovers nothing."""
    alice = await client.connect()
    await resume(alice, {"lobby": ("0000000000000000", 0)})
    await alice.send("join", {"room": "lobby"})
    texts, position = await texts_until_position(alice)
    assert (texts, position["recovered"]) == ([], False)
    assert position["epoch"] != "0000000000000000"


async def test_a_position_ahead_of_the_room_is_not_recovered(client: TestClient) -> None:
    """An offset the room never reached is a lie or a lost history: not recovered."""
    alice = await client.connect()
    epoch = (await joined(alice)).payload["epoch"]
    await alice.send("websuckets resume", {"rooms": {"lobby": {"epoch": epoch, "offset": 7}}})
    assert (await texts_until_position(alice))[1]["recovered"] is False


async def test_expired_messages_are_not_recovered(make_backend: Callable[[], Backend]) -> None:
    """Messages older than the room's ttl are gone: resuming over them recovers nothing."""
    app = history_app(make_backend(), {"lobby": History(size=10, ttl=0.3)})
    async with TestClient(app, real=True) as client:
        alice, bob = await client.connect(), await client.connect()
        epoch = (await joined(alice)).payload["epoch"]
        await joined(bob)
        await alice.close()
        await say(bob, "old")
        await asyncio.sleep(0.4)
        await say(bob, "new")
        again = await client.connect()
        await resume(again, {"lobby": (epoch, 0)})
        await again.send("join", {"room": "lobby"})
        assert (await texts_until_position(again))[0:1] == ([],)
        await resume(again, {"lobby": (epoch, 1)})  # only the fresh one missed: recoverable
        assert (await texts_until_position(again))[0] == ["new"]


async def test_excluded_sender_gets_its_own_message_on_resume(client: TestClient) -> None:
    """History keeps every message: a sender excluded live gets its own message when it resumes."""
    alice = await client.connect()
    epoch = (await joined(alice)).payload["epoch"]
    await say(alice, "mine")
    await alice.send("websuckets resume", {"rooms": {"lobby": {"epoch": epoch, "offset": 0}}})
    assert (await texts_until_position(alice))[0] == ["mine"]


async def test_patterns_choose_the_rooms_with_history(client: TestClient) -> None:
    """fnmatch patterns select history rooms; other rooms' messages carry no position and resume ignores them."""
    alice, bob = await client.connect(), await client.connect()
    assert (await joined(alice, "chat:42")).payload["room"] == "chat:42"
    await alice.send("join", {"room": "plain"})
    await bob.send("join", {"room": "plain"})
    assert await say(bob, "hello", room="plain") is None
    plain = await alice.receive()
    assert plain.raw == '{"event":"said","payload":"hello"}'
    reply = await resume(alice, {"plain": ("e", 0), "chat:7": ("e", 0)})
    assert reply.payload == {"waiting": ["chat:7"]}


async def test_history_rooms_take_json_objects_only(client: TestClient) -> None:
    """A history room refuses a message that cannot carry a position, naming the room."""
    with pytest.raises(TypeError, match="lobby"):
        await Session.broadcast("plain text", room="lobby")
    with pytest.raises(TypeError, match="lobby"):
        await Session.broadcast(b"\x00", room="lobby")


async def test_resume_is_validated_and_bounded(client: TestClient) -> None:
    """A malformed resume gets validation_error and the connection stays usable."""
    alice = await client.connect()
    await alice.send("websuckets resume", {"rooms": {"lobby": {"epoch": "e", "offset": -1}}})
    await alice.receive_error("validation_error")
    rooms = {f"r{number}": {"epoch": "e", "offset": 0} for number in range(101)}
    await alice.send("websuckets resume", {"rooms": rooms})
    await alice.receive_error("validation_error")
    assert (await joined(alice)).payload["recovered"] is None


async def test_apps_without_history_have_no_resume_command(make_backend: Callable[[], Backend]) -> None:
    """Without history the command does not exist, and room messages are unchanged."""
    async with TestClient(WebSuckets(backend=make_backend())) as client:
        alice = await client.connect()
        await alice.send("websuckets resume", {"rooms": {}})
        await alice.receive_error("unknown_command")


async def test_a_backend_without_history_is_refused_at_start() -> None:
    """History needs a backend that keeps it: a custom one that does not is named when the app starts."""

    class Plain(MemoryBackend):
        recover = Backend.recover

    app = WebSuckets(backend=Plain(), history={"lobby": History()})
    with pytest.raises(AppStateError, match="Plain keeps no room history"):
        await app.__aenter__()


def test_history_options_are_checked() -> None:
    """Sizes and ttls that make no sense are refused where they are written."""
    with pytest.raises(ValueError, match="size"):
        History(size=0)
    with pytest.raises(ValueError, match="ttl"):
        History(ttl=0)
    with pytest.raises(TypeError, match="History"):
        WebSuckets(history={"lobby": 100})  # type: ignore[dict-item]


async def test_a_long_history_room_name_does_not_spoil_a_resume(client: TestClient) -> None:
    """A client resumes every room it got positions from, whatever the length of their names."""
    long_room = "chat:" + "x" * 300  # matches "chat:*"
    alice, bob = await client.connect(), await client.connect()
    lobby = (await joined(alice)).payload
    other = (await joined(alice, long_room)).payload
    await joined(bob)
    await alice.close()
    await say(bob, "missed")
    again = await client.connect()
    reply = await resume(again, {"lobby": (lobby["epoch"], 0), long_room: (other["epoch"], 0)})
    assert reply.payload == {"waiting": ["lobby", long_room]}
    await again.send("join", {"room": "lobby"})
    texts, position = await texts_until_position(again)
    assert (texts, position["recovered"]) == (["missed"], True)


async def test_idle_rooms_lose_their_history_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """MemoryBackend forgets the history of rooms idle for HISTORY_IDLE, as Redis expires their keys."""
    import websuckets.backends.memory as memory

    class Small(MemoryBackend):
        PRUNE_MINIMUM = 2

    monkeypatch.setattr(memory, "HISTORY_IDLE", 0.0)
    async with TestClient(history_app(Small()), real=True) as client:
        alice = await client.connect()
        first = await say(alice, "kept a moment", room="chat:1")
        await say(alice, "also", room="chat:2")
        await asyncio.sleep(0.01)
        await say(alice, "a third room sweeps the idle ones", room="chat:3")
        assert first is not None
        await resume(alice, {"chat:1": (first.epoch, 0)})
        await alice.send("join", {"room": "chat:1"})
        texts, position = await texts_until_position(alice)
        assert (texts, position["recovered"]) == ([], False)
        assert position["epoch"] != first.epoch


async def test_an_empty_object_gets_its_position_as_valid_json(client: TestClient) -> None:
    """Even ``{}`` is stamped into valid JSON."""
    alice = await client.connect()
    epoch = (await joined(alice)).payload["epoch"]
    await Session.broadcast("{}", room="lobby")
    assert json.loads(await alice.receive_text()) == {"room": "lobby", "epoch": epoch, "offset": 1}


def test_ttls_past_a_year_are_refused() -> None:
    """An infinite or absurd ttl is refused where it is written, not at the first broadcast."""
    with pytest.raises(ValueError, match="ttl"):
        History(ttl=math.inf)
    with pytest.raises(ValueError, match="ttl"):
        History(ttl=1e300)


async def test_a_replay_larger_than_the_slow_consumer_limit_is_delivered(make_backend: Callable[[], Backend]) -> None:
    """Resuming over 6 MiB of missed messages is an answer, not a slow consumer: all of it arrives."""
    app = history_app(make_backend(), {"lobby": History(size=2000)})
    async with TestClient(app, real=True, timeout=10) as client:
        alice = await client.connect()
        epoch = (await joined(alice)).payload["epoch"]
        await alice.close()
        text = "x" * 3072
        for _ in range(2000):  # pushed by the server (a client's commands would meet the rate limit)
            await Session.broadcast(ClientEvent("said", text), room="lobby")
        again = await client.connect()
        await resume(again, {"lobby": (epoch, 0)})
        await again.send("join", {"room": "lobby"})
        texts, position = await texts_until_position(again)
        assert (len(texts), position["recovered"]) == (2000, True)
