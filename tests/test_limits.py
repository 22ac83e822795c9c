"""Per-connection rate limits and handler time limits: errors the client can act on, the connection goes on."""

import asyncio
import json

import pytest
from examples_loader import load_example
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from websuckets import CommandGroup, Context, WebSuckets
from websuckets.dispatcher import Connection
from websuckets.instrument import Instrument
from websuckets.middleware import CommandTimeouts, RateLimit
from websuckets.testing import TestClient

HANG_GUARD = 5.0
"""Seconds far above the time these closes take, far below websockets' 10 s ``close_timeout``: only stops a hang."""


def make_app(**options: object) -> WebSuckets:
    app = WebSuckets(**options)  # type: ignore[arg-type]
    group = CommandGroup("x")

    @group.command("ping")
    async def ping(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("pong")

    @group.command("login")
    async def login(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("tried")

    @group.command("stuck")
    async def stuck(socket: ServerConnection) -> None:
        await asyncio.Event().wait()

    @group.command("slow")
    async def slow(socket: ServerConnection, ctx: Context) -> None:
        await asyncio.sleep(0.2)
        await ctx.reply("slow done")

    app.include_command_group(group)
    return app


async def test_over_the_rate_limit_gets_rate_limited_then_1008(real: bool) -> None:
    """The burst goes through, then rate_limited with retry_after; a client that keeps on is closed with 1008."""
    app = make_app(rate_limit=RateLimit(rate=0.001, burst=3, close_after=5))
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        for _ in range(3):
            await alice.request("x ping")
        await alice.send("x ping", id=1)
        refused = await alice.receive_error("rate_limited")
        assert refused.payload["id"] == 1
        assert refused.payload["details"]["retry_after"] > 0
        for _ in range(10):
            await alice.send("x ping")
        assert await alice.expect_closed() == CloseCode.POLICY_VIOLATION


async def test_a_flooding_client_gets_its_1008_close_handshake_behind_its_unread_commands() -> None:
    """The README app, 600 commands at once: the server keeps reading past its close frame, so the
    client's close frame is read and the close handshake completes (it is not aborted after
    close_timeout), while hundreds of the client's commands were still unread by the server."""
    app = load_example("quickstart.py").app
    served: list[ServerConnection] = []

    class Served(Instrument):
        def connection_ready(self, connection: Connection) -> None:
            served.append(connection.socket)

    app.add_instrument(Served())
    frame = json.dumps({"event": "user hello", "payload": {"nickname": "flood"}})
    async with (
        app,
        app.serve("127.0.0.1", 0) as server,
        connect(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/") as client,
    ):
        for _ in range(600):
            await client.send(frame)  # all sent before reading anything
        replies: list[str] = []

        async def read_to_the_end() -> None:
            try:
                while True:
                    replies.append(str(await client.recv()))
            except ConnectionClosed:
                pass

        await asyncio.wait_for(read_to_the_end(), HANG_GUARD)
        (socket,) = served
        await asyncio.wait_for(socket.wait_closed(), HANG_GUARD)
    assert len(replies) < 600, "the server closed before it had read the whole flood"
    assert sum('"rate_limited"' in reply for reply in replies) > 0
    assert client.protocol.close_rcvd is not None
    assert client.protocol.close_rcvd.code == CloseCode.POLICY_VIOLATION
    received = socket.protocol.close_rcvd
    assert received is not None, "the server read the client's close frame: a handshake, not an abort"
    assert received.code == CloseCode.POLICY_VIOLATION


async def test_a_rate_limit_subclass_trusts_the_services_it_names() -> None:
    """examples/service_limit.py: a stranger is refused past the burst; a signed-in service is not."""
    app = load_example("service_limit.py").app
    async with TestClient(app) as client:
        stranger, service = await client.connect(), await client.connect()
        for _ in range(250):
            await stranger.send("service ping")
        replies = [await stranger.receive() for _ in range(250)]
        assert 0 < sum(reply.error_name == "rate_limited" for reply in replies) <= 50  # the burst is 200
        await service.request("service login", {"name": "billing", "secret": "s3cret"})
        for _ in range(1000):
            await service.send("service ping")
        assert {(await service.receive()).event for _ in range(1000)} == {"pong"}


async def test_the_limit_is_per_connection(real: bool) -> None:
    """One client over its limit does not limit another."""
    app = make_app(rate_limit=RateLimit(rate=0.001, burst=1))
    async with TestClient(app, real=real) as client:
        alice, bob = await client.connect(), await client.connect()
        await alice.request("x ping")
        await alice.send("x ping")
        await alice.receive_error("rate_limited")
        await bob.request("x ping")


async def test_per_command_limits_are_tighter() -> None:
    """A per-command limit refuses that command while others go on."""
    app = make_app(rate_limit=RateLimit(per_command={"x login": (0.001, 2)}))
    async with TestClient(app) as client:
        alice = await client.connect()
        await alice.request("x login")
        await alice.request("x login")
        await alice.send("x login")
        await alice.receive_error("rate_limited")
        for _ in range(5):
            await alice.request("x ping")


def test_a_rate_limit_needs_a_positive_rate() -> None:
    """RateLimit refuses a rate of zero and a burst under one."""
    with pytest.raises(ValueError, match="rate"):
        RateLimit(rate=0)


async def test_a_stuck_handler_is_cancelled_and_the_connection_goes_on(real: bool) -> None:
    """With command_timeouts, a stuck handler's client gets command_timeout and its next command works."""
    app = make_app(command_timeouts=0.05)
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("x stuck", id="s")
        error = await alice.receive_error("command_timeout")
        assert error.payload["id"] == "s"
        await alice.request("x ping")


async def test_per_command_time_limits_override_the_default() -> None:
    """A command given None has no limit even when the default would cancel it."""
    app = make_app(command_timeouts=CommandTimeouts(0.05, {"x slow": None}))
    async with TestClient(app) as client:
        alice = await client.connect()
        assert (await alice.request("x slow")).event == "slow done"
        await alice.send("x stuck")
        await alice.receive_error("command_timeout")


async def test_without_limits_the_middlewares_are_left_out() -> None:
    """An app without a rate limit or time limits has neither in any chain."""
    app = make_app(rate_limit=None)
    async with app:
        for route in app.dispatcher.routes.values():
            assert "RateLimit" not in repr(route.chain)
            assert "CommandTimeouts" not in repr(route.chain)
