"""websuckets.js streams (``for await (... of client.stream(...))``, AbortSignal), run by node against a real server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import BaseModel
from test_js_client import NODE_TIMEOUT, node_command
from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, Context, InternalError, WebSuckets

JS_STREAMS = Path(__file__).resolve().parent / "js" / "streams"


class Count(BaseModel):
    n: int
    pause: float = 0.0
    """Milliseconds between items."""


def make_app() -> WebSuckets:
    """Streams for the client: a counter (closed generators noted, for ``closed``), one that fails, an echo."""
    app = WebSuckets()
    group = CommandGroup()
    closed: list[int] = []

    @group.command("count")
    async def count(socket: ServerConnection, model: Count) -> AsyncIterator[int]:
        try:
            for i in range(model.n):
                yield i
                if model.pause:
                    await asyncio.sleep(model.pause / 1000)
        finally:
            closed.append(model.n)

    @group.command("fails")
    async def fails(socket: ServerConnection) -> AsyncIterator[int]:
        yield 1
        raise InternalError("search_failed", "the index is down")

    @group.command("closed")
    async def closed_streams(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("closed", closed)

    @group.command("echo")
    async def echo(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("echo", ctx.payload)

    app.include_command_group(group)
    return app


async def test_js_streams_against_a_real_server() -> None:
    """tests/js/streams/*.test.mjs pass: items, the end, break and AbortSignal cancelling, errors, timeouts, drops."""
    runner = node_command()
    runner = runner[: runner.index("--test")]  # node and its flags, without tests/js's own files
    command = [*runner, "--test", *map(str, sorted(JS_STREAMS.glob("*.test.mjs")))]
    app = make_app()
    async with app, app.serve("127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        process = await asyncio.create_subprocess_exec(
            *command,
            env={**os.environ, "WEBSUCKETS_STREAMS_URL": url, "NO_COLOR": "1"},
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
