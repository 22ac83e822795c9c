"""`Health`: /healthz and /readyz over real HTTP, readiness following a real Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from http_get import http_get
from redis_server import RedisServer
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, Context, WebSuckets
from websuckets.backends.base import BackendHealth
from websuckets.backends.redis import RedisBackend
from websuckets.health import Health


def make_app(**options: Any) -> WebSuckets:
    app = WebSuckets(**options)
    group = CommandGroup()

    @group.command("echo")
    async def echo(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("echo", ctx.payload)

    app.include_command_group(group)
    app.add_instrument(Health())
    return app


async def eventually(check: Callable[[], Any], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"not true within {within} s"
        await asyncio.sleep(0.05)


async def test_probes_answer_and_websockets_still_open() -> None:
    """/healthz and /readyz answer 200 with JSON; other paths and websocket upgrades are untouched."""
    app = make_app()
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        status, headers, body = await http_get(port, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert headers["content-type"] == "application/json"
        status, _, body = await http_get(port, "/readyz?verbose=1")
        assert (status, json.loads(body)["status"]) == (200, "ready")
        status, _, _ = await http_get(port, "/elsewhere")
        assert status == 426  # websockets' own answer to a plain request: no static routes here
        async with connect(f"ws://127.0.0.1:{port}/healthz") as websocket:
            await websocket.send(json.dumps({"event": "echo", "payload": 1}))
            assert json.loads(await websocket.recv())["payload"] == 1


async def test_paths_are_configurable() -> None:
    """Health(live_path=..., ready_path=None) serves the one probe asked for."""
    app = WebSuckets()
    app.add_instrument(Health(live_path="/live", ready_path=None))
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        assert (await http_get(port, "/live"))[0] == 200
        assert (await http_get(port, "/readyz"))[0] == 426


async def test_readyz_fails_while_redis_is_away(redis_server: RedisServer) -> None:
    """A killed redis-server turns /readyz into 503 (with the reason) while /healthz stays 200; a restart heals it."""
    backend = RedisBackend(redis_server.url, heartbeat=0.2, dead_after=1.0, timeout=1.0)
    app = make_app(backend=backend)
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        assert (await http_get(port, "/readyz"))[0] == 200

        redis_server.kill()

        async def unready() -> bool:
            return (await http_get(port, "/readyz"))[0] == 503

        await eventually(unready)
        _, _, body = await http_get(port, "/readyz")
        answer = json.loads(body)
        assert answer.pop("last_error") in {"ConnectionError", "TimeoutError"}  # its cause stays in the logs
        assert abs(datetime.fromisoformat(answer.pop("last_error_at")).timestamp() - time.time()) < 30
        assert answer == {"status": "unavailable", "reason": "the backend (RedisBackend) does not answer"}
        assert backend.health.last_error is not None
        assert backend.health.last_error_at is not None
        assert (await http_get(port, "/healthz"))[0] == 200

        redis_server.start()

        async def ready() -> bool:
            return (await http_get(port, "/readyz"))[0] == 200

        await eventually(ready, 15)


def test_the_scaling_guide_lists_every_field_of_the_backends_health() -> None:
    """The table of `backend.health` fields in "Scaling out" names each field of `BackendHealth`, and no other."""
    guide = (Path(__file__).resolve().parent.parent / "docs" / "guide" / "scaling.md").read_text()
    table = guide.split("## Watching it", 1)[1].split("| field | meaning |", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE)
    assert listed == [field.name for field in dataclasses.fields(BackendHealth)]
