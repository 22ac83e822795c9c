"""The Server-initiated events guide's example (examples/push.py): in memory, and run as a program."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import pytest
from examples_loader import EXAMPLES, load_example
from redis_server import free_port
from websockets.asyncio.client import ClientConnection, connect

from websuckets.exc import AppStateError
from websuckets.session import Session
from websuckets.testing import TestClient

pytestmark = pytest.mark.timeout(60)


async def test_background_tasks_push_ticks_and_news_to_every_client() -> None:
    """Once the app runs, a periodic broadcast and a queue's news reach every client, none of which asked."""
    push = load_example("push.py")
    push.TICK_SECONDS = 0.01
    async with TestClient(push.app) as client, push.background_tasks():
        alice, bob = await client.connect(), await client.connect()
        for connection in (alice, bob):
            tick = await connection.receive()
            assert tick.event == "tick"
            assert "time" in tick.payload

        push.TICK_SECONDS = 3600  # no more ticks after the next: the news comes next
        await push.news.put("from a queue")
        for connection in (alice, bob):
            while (event := await connection.receive()).event == "tick":
                pass
            assert (event.event, event.payload) == ("news", {"text": "from a queue"})


async def test_session_outside_a_connection_needs_a_running_app() -> None:
    """Before any app has started, a background task's broadcast raises AppStateError: start tasks after the app."""
    with pytest.raises(AppStateError, match="no websuckets app is running"):
        await Session.broadcast("too early")


async def test_the_program_pushes_to_its_clients_and_stops_on_ctrl_c() -> None:
    """``PORT=... python push.py``: clients get ticks, and news posted by one client reaches all; SIGINT exits 0."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / "push.py"), env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert f"serving on ws://localhost:{port}" in line, line
        async with connect(f"ws://localhost:{port}") as alice, connect(f"ws://localhost:{port}") as bob:
            assert (await next_event(alice))["event"] == "tick"
            await bob.send(json.dumps({"event": "news post", "payload": {"text": "hello"}, "id": 1}))
            for ws in (alice, bob):
                while (event := await next_event(ws))["event"] != "news":
                    assert event["event"] in ("tick", "posted"), event
                assert event["payload"] == {"text": "hello"}
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 15) == 0


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return event
