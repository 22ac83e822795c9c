"""The bot of the Python client guide (examples/bot.py) in the room chat (examples/rooms.py), over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import ModuleType

import pytest
from examples_loader import load_example

from websuckets import Session
from websuckets.testing import Received, TestClient, TestConnection


@pytest.fixture
async def chat(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient]:
    monkeypatch.delenv("REDIS_URL", raising=False)
    async with TestClient(load_example("rooms.py").app, real=True) as client:
        yield client


@contextlib.asynccontextmanager
async def bot_running(bot: ModuleType, url: str) -> AsyncIterator[None]:
    task = asyncio.create_task(bot.run(url, min_delay=0.01, max_delay=0.05))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def next_event(connection: TestConnection, event: str) -> Received:
    """The next frame named ``event``, skipping others (each receive bounded by the client's timeout)."""
    while (received := await connection.receive()).event != event:
        pass
    return received


async def test_the_bot_answers_in_its_room_and_comes_back_after_a_drop(chat: TestClient) -> None:
    """The bot joins the lobby, answers !ping and !upper, and joins again after the server drops it."""
    bot = load_example("bot.py")
    alice = await chat.connect()
    await alice.request("room join", {"room": "lobby", "nick": "alice"})
    async with bot_running(bot, chat.url):
        assert (await next_event(alice, "joined")).payload == {"room": "lobby", "nick": "bot"}
        await alice.request("room say", {"room": "lobby", "text": "!ping"})
        assert (await next_event(alice, "said")).payload == {"room": "lobby", "nick": "bot", "text": "pong"}
        await alice.request("room say", {"room": "lobby", "text": "hello, nobody answers this"})
        await alice.request("room say", {"room": "lobby", "text": "!upper shout"})
        assert (await next_event(alice, "said")).payload["text"] == "SHOUT"

        [bot_user] = [user for user in Session.room("lobby").values() if getattr(user, "nick", None) == "bot"]
        await bot_user.socket.close(1012, "restarting")
        assert (await next_event(alice, "left")).payload == {"room": "lobby", "nick": "bot"}
        assert (await next_event(alice, "joined")).payload == {"room": "lobby", "nick": "bot"}


def test_what_the_bot_answers() -> None:
    """Only messages starting with a known command get an answer."""
    bot = load_example("bot.py")
    assert [bot.answer(text) for text in ("!ping", "!upper a b", "ping", "!unknown")] == ["pong", "A B", None, None]
