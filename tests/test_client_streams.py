"""The Python client's streams, ``async for item in client.stream(...)``, against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, Context, InternalError, WebSuckets
from websuckets.client import ClientError, connect

WAIT = 2.0


class Count(BaseModel):
    n: int
    pause: float = 0.0


class Probe:
    def __init__(self) -> None:
        self.closed: list[int] = []
        self.running = asyncio.Event()
        self.gone = asyncio.Event()


def make_app(probe: Probe) -> WebSuckets:
    app = WebSuckets()
    group = CommandGroup()

    @group.command("count")
    async def count(socket: ServerConnection, model: Count) -> AsyncIterator[int]:
        try:
            for i in range(model.n):
                probe.running.set()
                yield i
                if model.pause:
                    await asyncio.sleep(model.pause)
        finally:
            probe.closed.append(model.n)
            probe.gone.set()

    @group.command("fails")
    async def fails(socket: ServerConnection) -> AsyncIterator[int]:
        yield 1
        raise InternalError("search_failed", "the index is down")

    @group.command("ping")
    async def ping(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("pong")

    app.include_command_group(group)
    return app


@contextlib.asynccontextmanager
async def serving(probe: Probe) -> AsyncIterator[str]:
    app = make_app(probe)
    async with app, app.serve("127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


async def test_stream_items_until_the_end() -> None:
    """``async for`` gets every item, each an event named after the command, and stops at the end."""
    probe = Probe()
    async with serving(probe) as url, connect(url) as client:
        items = [event async for event in client.stream("count", {"n": 5})]
        assert [(e.event, e.payload) for e in items] == [("count", i) for i in range(5)]
        assert probe.closed == [5]
        assert (await client.request("ping")).event == "pong"


async def test_breaking_out_cancels_on_the_server() -> None:
    """Leaving the loop early sends websuckets cancel: the server closes the generator (its finally runs)."""
    probe = Probe()
    async with serving(probe) as url, connect(url) as client:
        async with contextlib.aclosing(client.stream("count", {"n": 10_000, "pause": 0.01})) as stream:
            async for event in stream:
                if event.payload == 2:
                    break
        await asyncio.wait_for(probe.gone.wait(), WAIT)
        assert probe.closed == [10_000]


async def test_breaking_out_of_a_bare_loop_cancels_too() -> None:
    """Without aclosing, the loop's generator is closed when it is collected, which cancels the stream as well."""
    probe = Probe()
    async with serving(probe) as url, connect(url) as client:
        strays: list[object] = []
        client.on("count", strays.append)
        client.on("websuckets end", strays.append)
        async for event in client.stream("count", {"n": 10_000, "pause": 0.01}):
            if event.payload == 1:
                break
        await asyncio.wait_for(probe.gone.wait(), WAIT)
        assert probe.closed == [10_000]
        assert (await client.request("ping")).event == "pong"
        await asyncio.sleep(0.05)
        assert strays == []  # what came for the stream after the loop left it, its end included, is dropped


async def test_an_error_ends_the_stream_with_client_error() -> None:
    """The server's error event for the stream raises ClientError, with its name and details, after the items."""
    async with serving(Probe()) as url, connect(url) as client:
        seen: list[object] = []

        async def read() -> None:
            async for event in client.stream("fails"):
                seen.append(event.payload)

        with pytest.raises(ClientError) as raised:
            await read()
        assert seen == [1]
        assert raised.value.name == "search_failed"
        assert raised.value.details == "the index is down"


async def test_a_server_error_before_any_item() -> None:
    """A stream refused before it starts (validation) raises at once."""
    async with serving(Probe()) as url, connect(url) as client:
        with pytest.raises(ClientError) as raised:
            async for _ in client.stream("count", {"n": "many"}):
                pass
        assert raised.value.name == "validation_error"


async def test_a_stream_waits_for_no_item_longer_than_its_timeout() -> None:
    """``timeout`` bounds the wait for each item: ClientError timeout, and the stream is cancelled on the server."""
    probe = Probe()
    async with serving(probe) as url, connect(url) as client:
        with pytest.raises(ClientError) as raised:
            async for _ in client.stream("count", {"n": 10, "pause": 5.0}, timeout=0.2):
                pass
        assert raised.value.name == "timeout"
        await asyncio.wait_for(probe.gone.wait(), WAIT)


async def test_a_lost_connection_ends_the_stream() -> None:
    """The connection drops mid-stream: the loop raises ClientError disconnected; the server closed the generator."""
    probe = Probe()
    async with serving(probe) as url, connect(url, reconnect=False) as client:

        async def read_and_drop() -> None:
            async for event in client.stream("count", {"n": 10_000, "pause": 0.01}):
                if event.payload == 1:
                    assert client._socket is not None
                    await client._socket.close()

        with pytest.raises(ClientError) as raised:
            await read_and_drop()
        assert raised.value.name in ("disconnected", "closed")
        await asyncio.wait_for(probe.gone.wait(), WAIT)
