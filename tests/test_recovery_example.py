"""The Reconnect and recovery guide's app (examples/recovery.py): in memory, and as two processes on one Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from examples_loader import load_example
from redis_server import RedisServer
from test_rooms_example import command, next_event, serving
from websockets.asyncio.client import ClientConnection, connect

from websuckets.testing import TestClient

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def recovery(monkeypatch: pytest.MonkeyPatch) -> Callable[[], ModuleType]:
    monkeypatch.delenv("REDIS_URL", raising=False)
    return lambda: load_example("recovery.py")


async def test_a_reconnecting_client_gets_what_it_missed(recovery: Callable[[], ModuleType], real: bool) -> None:
    """Resume, then join: the missed messages, then recovered true; the sender hears its own message too."""
    async with TestClient(recovery().app, real=real) as client:
        alice, bob = await client.connect(), await client.connect()
        await alice.request("room join", {"room": "lobby"})
        start = alice.history[-2]  # the position event came just before the reply
        epoch = json.loads(start)["payload"]["epoch"]
        await bob.request("room join", {"room": "lobby"})
        await alice.close()
        for text in ("one", "two"):
            assert (await bob.request("room say", {"room": "lobby", "text": text})).event == "sent"
        again = await client.connect()
        await again.request("websuckets resume", {"rooms": {"lobby": {"epoch": epoch, "offset": 0}}})
        await again.send("room join", {"room": "lobby"}, id=1)
        said = [(await again.receive()).payload["text"] for _ in range(2)]
        position = await again.receive()
        assert (said, position.event, position.payload["recovered"]) == (["one", "two"], "websuckets position", True)
        assert (await again.receive()).event == "joined"


async def resume_and_join(ws: ClientConnection, room: str, epoch: str, offset: int) -> tuple[list[str], Any]:
    """What a reconnecting client does: the texts replayed by the join, and its position event."""
    await command(ws, "websuckets resume", {"rooms": {room: {"epoch": epoch, "offset": offset}}})
    await ws.send(json.dumps({"event": "room join", "payload": {"room": room}}))
    texts = []
    while (event := await next_event(ws))["event"] == "said":
        texts.append(event["payload"]["text"])
    assert event["event"] == "websuckets position", event
    return texts, event["payload"]


async def test_two_processes_resume_anywhere(redis_server: RedisServer) -> None:
    """A client of process A leaves; B's clients talk; it comes back to B and gets exactly what it missed.
    Past the history's size it is not recovered, nor after Redis restarted empty."""
    url = redis_server.url
    async with serving(url, "recovery.py") as first, serving(url, "recovery.py") as second:
        async with connect(first) as alice:
            await alice.send(json.dumps({"event": "room join", "payload": {"room": "lobby"}}))
            epoch = (await next_event(alice))["payload"]["epoch"]
        async with connect(second) as bob:
            await command(bob, "room join", {"room": "lobby"})
            for text in ("a", "b", "c"):
                await command(bob, "room say", {"room": "lobby", "text": text})
        async with connect(second) as alice:
            texts, position = await resume_and_join(alice, "lobby", epoch, 0)
        assert (texts, position["recovered"], position["offset"]) == (["a", "b", "c"], True, 3)

        async with connect(first) as bob:
            await command(bob, "room join", {"room": "lobby"})
            for number in range(101):  # one more than the room keeps
                await command(bob, "room say", {"room": "lobby", "text": str(number)})
        async with connect(second) as alice:
            texts, position = await resume_and_join(alice, "lobby", epoch, 3)
        assert (texts, position["recovered"], position["offset"]) == ([], False, 104)

        redis_server.kill()
        redis_server.start()  # empty: the room's epoch is gone
        async with connect(first) as probe:  # the processes reconnect by themselves
            for _ in range(100):
                await probe.send(json.dumps({"event": "room join", "payload": {"room": "probe"}}))
                while (event := await next_event(probe))["event"] == "websuckets position":
                    pass
                if event["event"] == "joined":
                    break
                await asyncio.sleep(0.1)
        async with connect(first) as alice:
            texts, position = await resume_and_join(alice, "lobby", epoch, 104)
        assert (texts, position["recovered"]) == ([], False)
        assert position["epoch"] != epoch


def test_the_recovery_guide_shows_this_file() -> None:
    """The guide includes examples/recovery.py itself, so the program tested is the one users read."""
    guide = (Path(__file__).resolve().parent.parent / "docs" / "guide" / "recovery.md").read_text()
    assert '--8<-- "examples/recovery.py"' in guide
