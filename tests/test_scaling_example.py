"""The Scaling out guide's app (examples/scaling.py): two apps on one Redis, each reporting its health."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from examples_loader import EXAMPLES, load_example
from redis_server import RedisServer, free_port
from websockets.asyncio.client import connect

from websuckets.testing import TestClient, TestConnection

pytestmark = pytest.mark.timeout(60)


async def health_when(client: TestConnection, wanted: Callable[[Any], bool], within: float = 10.0) -> Any:
    """Ask `ops health` until its report is ``wanted``; that report."""
    deadline = asyncio.get_running_loop().time() + within
    while not wanted(report := (await client.request("ops health")).payload):
        assert asyncio.get_running_loop().time() < deadline, f"last report: {report}"
        await asyncio.sleep(0.01)
    return report


async def test_health_reports_the_backend_and_every_process_clients(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ops health` says Redis is connected, names the worker, and counts the clients of both processes."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(TestClient(load_example("scaling.py").app, real=True))
        second = await stack.enter_async_context(TestClient(load_example("scaling.py").app, real=True))
        alice, _bob = await first.connect(), await second.connect()
        report = await health_when(alice, lambda report: report["online"] == 2)
        assert report["worker"] == first.app.backend.worker_id
        assert report["backend"] == {
            "connected": True,
            "reconnects": 0,
            "failed_operations": 0,
            "dropped_deliveries": 0,
            "listener_errors": 0,
            "history_gaps": 0,
            "last_error": None,
            "last_error_at": None,
        }
        assert report["slow_consumers_closed"] >= 0


async def test_health_shows_redis_gone(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Redis killed, the same command still answers (it needs only this process) and says so."""
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    async with TestClient(load_example("scaling.py").app, real=True) as client:
        alice = await client.connect()
        redis_server.kill()
        report = await health_when(alice, lambda report: not report["backend"]["connected"])
        assert report["online"] == 1  # the last state this process saw


async def test_the_example_runs_as_a_program(redis_url: str) -> None:
    """``REDIS_URL=... PORT=... python examples/scaling.py`` serves, answers `ops health`, and exits 0 on SIGINT."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / "scaling.py"), env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert f"serving on ws://localhost:{port}" in line, line
        async with connect(f"ws://localhost:{port}") as ws:
            await ws.send(json.dumps({"event": "ops health", "id": 1}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert (reply["event"], reply["payload"]["backend"]["connected"], reply["payload"]["online"]) == (
            "health",
            True,
            1,
        )
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 15) == 0
