"""The Streaming replies guide's example (examples/streams.py): in memory, and as a program with the Python client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import pytest
from examples_loader import EXAMPLES, load_example
from redis_server import free_port

from websuckets.client import connect
from websuckets.testing import TestClient

pytestmark = pytest.mark.timeout(60)


async def test_a_search_streams_each_hit_then_ends() -> None:
    """Each matching title arrives as its own event, ranked, then the end with the count."""
    example = load_example("streams.py")
    example.DELAY = 0.001
    async with TestClient(example.app) as client:
        alice = await client.connect()
        stream = await alice.stream("books search", {"text": "python"})
        hits = [item.payload async for item in stream]
        assert [hit["rank"] for hit in hits] == list(range(1, len(example.BOOKS) + 1))
        assert stream.end.payload == {"items": len(hits), "cancelled": False}


async def test_a_cancelled_search_closes_its_cursor(caplog: pytest.LogCaptureFixture) -> None:
    """Cancelled after the first hit: the generator's finally runs, then the cursor's finalizer."""
    caplog.set_level("INFO", "streams")
    example = load_example("streams.py")
    example.DELAY = 0.05
    async with TestClient(example.app) as client:
        alice = await client.connect()
        stream = await alice.stream("books search", {"text": "python"})
        assert (await stream.next()).payload == {"title": "Python in a Nutshell", "rank": 1}
        end = await stream.cancel()
        assert end.payload["cancelled"] is True
        assert "search 'python' stopped after" in caplog.text
        assert "cursor closed" in caplog.text


async def test_the_program_streams_to_the_python_client() -> None:
    """``PORT=... python streams.py``: the client's ``async for`` gets the hits; leaving it cancels; SIGINT exits 0."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "streams.py"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert f"serving on ws://localhost:{port}" in line, line
        async with connect(f"ws://localhost:{port}") as client:
            titles = [hit.payload["title"] async for hit in client.stream("books search", {"text": "asyncio"})]
            assert titles == ["Using Asyncio in Python"]
            async with contextlib.aclosing(client.stream("books search", {"text": "python"})) as hits:
                async for hit in hits:
                    assert hit.payload["rank"] == 1
                    break
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 15) == 0
        assert process.stderr is not None
        stderr = (await process.stderr.read()).decode()
    assert "search 'python' stopped after 1 hits" in stderr
    assert "cursor closed" in stderr
    assert "Traceback" not in stderr
