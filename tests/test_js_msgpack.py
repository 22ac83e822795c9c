"""websuckets.js speaking MessagePack (the ``msgpack`` option, @msgpack/msgpack), run by node against a real server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import ormsgpack  # noqa: F401  (in the dev install: without it these tests fail, never skip)
import pytest
from test_js_client import NODE_TIMEOUT, node_command
from test_msgpack import make_app

JS_MSGPACK = Path(__file__).resolve().parent / "js" / "msgpack"


async def test_js_msgpack_against_a_real_server() -> None:
    """tests/js/msgpack/*.test.mjs pass: negotiation, raw bytes, error names, streams, a mixed room."""
    runner = node_command()
    runner = runner[: runner.index("--test")]
    command = [*runner, "--test", *map(str, sorted(JS_MSGPACK.glob("*.test.mjs")))]
    app = make_app()
    async with app, app.serve("127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        process = await asyncio.create_subprocess_exec(
            *command,
            env={**os.environ, "WEBSUCKETS_MSGPACK_URL": url, "NO_COLOR": "1"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), NODE_TIMEOUT)
        except TimeoutError:
            process.kill()
            output, _ = await process.communicate()
            pytest.fail(f"node did not finish in {NODE_TIMEOUT} s:\n{output.decode()}")
    assert process.returncode == 0, output.decode()
