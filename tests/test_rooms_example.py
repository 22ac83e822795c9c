"""The room chat of the Sessions guide (examples/rooms.py): in memory, over sockets, and on two processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from examples_loader import EXAMPLES, load_example
from redis_server import free_port
from websockets.asyncio.client import ClientConnection, connect

from websuckets.testing import ErrorReply, TestClient, TestConnection

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def rooms(monkeypatch: pytest.MonkeyPatch) -> Callable[[], ModuleType]:
    """Load the example afresh; without REDIS_URL it uses the default in-memory backend."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    return lambda: load_example("rooms.py")


async def join(connection: TestConnection, room: str, nick: str) -> list[str]:
    reply = await connection.request("room join", {"room": room, "nick": nick})
    assert reply.event == "room members"
    return reply.payload["members"]  # type: ignore[no-any-return]


async def test_a_room_chat(rooms: Callable[[], ModuleType], real: bool) -> None:
    """Members hear who joins, what others say and who leaves; non-members hear nothing."""
    async with TestClient(rooms().app, real=real) as client:
        alice, bob, carol = await client.connect(), await client.connect(), await client.connect()
        assert await join(alice, "lobby", "alice") == ["alice"]
        assert await join(bob, "lobby", "bob") == ["alice", "bob"]
        assert (await alice.receive()).payload == {"room": "lobby", "nick": "bob"}

        assert (await alice.request("room say", {"room": "lobby", "text": "hi"})).event == "sent"
        said = await bob.receive()
        assert (said.event, said.payload) == ("said", {"room": "lobby", "nick": "alice", "text": "hi"})

        assert (await bob.request("room leave", {"room": "lobby"})).payload == {"room": "lobby"}
        left = await alice.receive()
        assert (left.event, left.payload) == ("left", {"room": "lobby", "nick": "bob"})

        await join(carol, "lobby", "carol")
        assert (await alice.receive()).event == "joined"
        await carol.close()  # the disconnect hook tells the room
        assert (await alice.receive()).payload == {"room": "lobby", "nick": "carol"}
        assert [frame for frame in bob.history if '"said"' in frame] == [said.raw]


async def test_what_the_room_chat_refuses(rooms: Callable[[], ModuleType], real: bool) -> None:
    """Saying to or leaving a room one is not in is not_in_room; an empty nick is a validation error."""
    async with TestClient(rooms().app, real=real) as client:
        alice = await client.connect()
        for event, payload, name in [
            ("room say", {"room": "lobby", "text": "anyone?"}, "not_in_room"),
            ("room leave", {"room": "lobby"}, "not_in_room"),
            ("room join", {"room": "lobby", "nick": ""}, "validation_error"),
        ]:
            with pytest.raises(ErrorReply) as caught:
                await alice.request(event, payload)
            assert caught.value.name == name


async def test_the_room_chat_on_two_apps_sharing_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With REDIS_URL set, two apps (standing for two processes) share members, broadcasts and departures."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(TestClient(load_example("rooms.py").app, real=True))
        second = await stack.enter_async_context(TestClient(load_example("rooms.py").app, real=True))
        alice, bob = await first.connect(), await second.connect()
        await join(alice, "lobby", "alice")
        await eventually(lambda: len(second.app.backend.room_members("lobby")) == 1)
        assert await join(bob, "lobby", "bob") == ["alice", "bob"]  # alice's nick, read on the other process
        assert (await alice.receive()).payload == {"room": "lobby", "nick": "bob"}

        await alice.request("room say", {"room": "lobby", "text": "hi"})
        assert (await bob.receive()).payload == {"room": "lobby", "nick": "alice", "text": "hi"}
        await bob.close()
        assert (await alice.receive()).payload == {"room": "lobby", "nick": "bob"}


async def test_two_processes_started_from_the_command_line_share_rooms(redis_url: str) -> None:
    """``REDIS_URL=... PORT=... python rooms.py`` twice: a client of one hears a client of the other."""
    async with (
        serving(redis_url) as first,
        serving(redis_url) as second,
        connect(first) as alice,
        connect(second) as bob,
    ):
        await command(alice, "room join", {"room": "lobby", "nick": "alice"})
        await command(bob, "room join", {"room": "lobby", "nick": "bob"})
        assert (await next_event(alice))["event"] == "joined"
        await command(alice, "room say", {"room": "lobby", "text": "hi"})
        assert (await next_event(bob))["payload"] == {"room": "lobby", "nick": "alice", "text": "hi"}


@asynccontextmanager
async def serving(redis_url: str, example: str = "rooms.py") -> AsyncIterator[str]:
    """Run examples/rooms.py (or ``example``) as a program on a free port with REDIS_URL; its URL until it
    exits 0 on SIGINT."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / example), env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert f"serving on ws://localhost:{port}" in line.decode(), line
        yield f"ws://localhost:{port}"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 15) == 0


async def command(ws: ClientConnection, event: str, payload: Any) -> None:
    """Send a command and wait for its answer (the event carrying its id back), which must not be an error."""
    await ws.send(json.dumps({"event": event, "payload": payload, "id": event}))
    while (reply := await next_event(ws)).get("id") != event:
        pass
    assert reply["event"] != "error", reply


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return event


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not true within {within} s"
        await asyncio.sleep(0.01)


def test_the_sessions_guide_shows_this_file() -> None:
    """The guide includes examples/rooms.py itself, so the program tested is the one users read."""
    guide = (Path(__file__).resolve().parent.parent / "docs" / "guide" / "sessions.md").read_text()
    assert '--8<-- "examples/rooms.py"' in guide
