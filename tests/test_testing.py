"""The test client: timeouts that say what arrived, server exceptions raised in the test."""

import pytest
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Context, WebSuckets
from websuckets.testing import ErrorReply, TestClient


def make_app() -> WebSuckets:
    app = WebSuckets()
    group = CommandGroup()

    @group.command("one")
    async def one(socket: ServerConnection) -> None:
        await socket.send(ClientEvent("first"))

    @group.command("boom")
    async def boom(socket: ServerConnection) -> None:
        raise KeyError("missing thing")

    @group.command("echo")
    async def echo(socket: ServerConnection, ctx: Context) -> None:
        await socket.send(ClientEvent("noise"))
        await ctx.reply("echoed", ctx.payload)

    app.include_command_group(group)
    return app


async def test_receive_times_out_with_what_arrived(real: bool) -> None:
    """A receive that gets nothing fails the test quickly, listing what was received before."""
    async with TestClient(make_app(), real=real, timeout=0.2) as client:
        alice = await client.connect()
        await alice.send("one")
        await alice.receive()
        with pytest.raises(AssertionError, match=r"nothing received within 0.2 s; received so far: \['\{\"event\""):
            await alice.receive()


async def test_handler_exception_is_raised_in_the_test(real: bool) -> None:
    """An unexpected exception in a handler surfaces in the test as itself, not as a timeout."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        await alice.send("boom")
        with pytest.raises(KeyError, match="missing thing"):
            await alice.receive()


async def test_unread_handler_exception_is_raised_on_exit(real: bool) -> None:
    """An exception nobody received is raised when the client closes."""
    with pytest.raises(KeyError, match="missing thing"):  # noqa: PT012  (raised as the block ends)
        async with TestClient(make_app(), real=real) as client:
            alice = await client.connect()
            await alice.send("boom")
            await alice.send("one")
            await alice.receive_text()


async def test_request_matches_the_reply_by_id(real: bool) -> None:
    """request() skips unrelated events and returns the reply tagged with its id; errors raise."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        reply = await alice.request("echo", {"a": 1})
        assert (reply.event, reply.payload) == ("echoed", {"a": 1})
        with pytest.raises(ErrorReply) as caught:
            await alice.request("nope")
        assert caught.value.name == "unknown_command"
