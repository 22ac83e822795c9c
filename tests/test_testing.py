"""The test client: timeouts that say what arrived, server exceptions raised in the test."""

import asyncio

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request

from websuckets import ClientEvent, CommandGroup, Context, Session, User, WebSuckets
from websuckets.backends import MemoryBackend
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
    """An exception that no receive surfaced is raised when the test client closes."""
    with pytest.raises(KeyError, match="missing thing"):  # noqa: PT012  (raised as the block ends)
        async with TestClient(make_app(), real=real) as client:
            alice = await client.connect()
            await alice.send("boom")


async def test_request_matches_the_reply_by_id(real: bool) -> None:
    """request() skips unrelated events and returns the reply tagged with its id; errors raise."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        reply = await alice.request("echo", {"a": 1})
        assert (reply.event, reply.payload) == ("echoed", {"a": 1})
        with pytest.raises(ErrorReply) as caught:
            await alice.request("nope")
        assert caught.value.name == "unknown_command"


async def test_concurrent_connects_get_their_own_ids(real: bool) -> None:
    """Clients connected at the same time each know their own server-side id."""
    async with TestClient(make_app(), real=real) as client:
        clients = await asyncio.gather(*(client.connect() for _ in range(5)))
        assert len({c.client_id for c in clients}) == 5
        assert {c.client_id for c in clients} == set(Session.online)


async def test_connect_returns_after_the_connect_hooks(real: bool) -> None:
    """connect() returns once on_connect has run, so its effects are visible at once."""
    app = make_app()
    seen: list[str] = []

    @app.on_connect
    async def slow_hook(user: User) -> None:
        await asyncio.sleep(0.05)
        seen.append(str(user.client_id))

    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        assert seen == [str(alice.client_id)]


async def test_request_keeps_other_events_for_receive(real: bool) -> None:
    """Events that arrive while request() waits for its reply are not lost."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        await alice.request("echo", 1)
        assert (await alice.receive()).event == "noise"


async def test_plain_text_frames_are_received_too(real: bool) -> None:
    """A handler that sends plain text (as the original 'say ok' does) is readable with receive()."""
    app = WebSuckets()
    group = CommandGroup()

    @group.command("say ok")
    async def say_ok(socket: ServerConnection) -> None:
        await socket.send("ok")

    app.include_command_group(group)
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("say ok")
        received = await alice.receive()
        assert (received.event, received.raw) == (None, "ok")


async def test_in_memory_socket_behaves_like_a_real_one(real: bool) -> None:
    """Handlers see the same socket surface in memory: request headers, ping, type errors."""
    app = WebSuckets()
    group = CommandGroup()

    @group.command("inspect")
    async def inspect(socket: ServerConnection, ctx: Context) -> None:
        assert socket.request is not None
        pong = await socket.ping()
        await pong
        try:
            await socket.send({"not": "text"})  # type: ignore[arg-type]
        except TypeError:
            await ctx.reply("inspected", {"host": socket.request.headers.get("Host") is not None})

    app.include_command_group(group)
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        assert (await alice.request("inspect")).payload == {"host": True}


async def test_a_failure_outside_any_command_closes_1011_and_raises(real: bool) -> None:
    """A failure outside any command (here, the backend) closes with 1011; the test gets the error."""

    class BrokenBackend(MemoryBackend):
        def add_online(self, user: User) -> None:
            raise ZeroDivisionError("backend bug")

    async with TestClient(WebSuckets(backend=BrokenBackend()), real=real, raise_server_exceptions=False) as client:
        alice = await client.connect()
        assert await alice.expect_closed() == 1011
    assert [type(e) for e in client.server_errors] == [ZeroDivisionError]


async def test_a_connect_hook_failure_closes_1011_and_raises(real: bool) -> None:
    """An unexpected exception in on_connect closes the connection with 1011 and reaches the test."""
    app = make_app()

    @app.on_connect
    async def broken(socket: ServerConnection) -> None:
        raise ZeroDivisionError("hook bug")

    async with TestClient(app, real=real, raise_server_exceptions=False) as client:
        alice = await client.connect()
        assert await alice.expect_closed() == 1011
    assert [type(e) for e in client.server_errors] == [ZeroDivisionError]


async def test_the_handshake_checks_run_in_memory_too(real: bool) -> None:
    """Headers, subprotocols and the path reach the handshake checks; a refusal raises InvalidStatus either way."""
    seen: list[tuple[str, str | None, str | None]] = []

    def record(connection: ServerConnection, request: Request) -> None:
        seen.append((request.path, request.headers.get("X-Test"), request.headers.get("Sec-WebSocket-Protocol")))

    app = WebSuckets(max_connections=1, handshake_checks=[record])
    async with TestClient(app, real=real) as client:
        first = await client.connect(headers={"X-Test": "yes"}, subprotocols=["websuckets"], path="/chat?room=1")
        assert seen == [("/chat?room=1", "yes", "websuckets")]
        with pytest.raises(InvalidStatus) as refused:
            await client.connect()
        assert refused.value.response.status_code == 503
        await first.close()
        with pytest.raises(InvalidStatus) as refused:
            await client.connect(headers={"Origin": "https://evil.example"})
        assert refused.value.response.status_code == 403


async def test_a_connect_hook_that_never_ends_fails_the_connect_in_time(real: bool) -> None:
    """connect() waits for the connect hooks at most the client's timeout, then says what it waited for."""
    app = make_app()
    release = asyncio.Event()

    @app.on_connect
    async def stuck() -> None:
        await release.wait()

    async with TestClient(app, real=real, timeout=0.2) as client:
        started = asyncio.get_running_loop().time()
        try:
            with pytest.raises(TimeoutError, match=r"did not run its connect hooks within 0.2 s"):
                await client.connect()
        finally:
            release.set()
        assert asyncio.get_running_loop().time() - started < 1.0


async def test_a_handshake_check_that_never_ends_fails_the_connect_in_time(real: bool) -> None:
    """A handshake that never gets its answer fails connect() within the client's timeout."""
    release = asyncio.Event()

    async def stuck(connection: ServerConnection, request: Request) -> None:
        await release.wait()

    async with TestClient(WebSuckets(handshake_checks=[stuck]), real=real, timeout=0.2) as client:
        started = asyncio.get_running_loop().time()
        try:
            with pytest.raises(TimeoutError, match="opening handshake"):
                await client.connect()
        finally:
            release.set()
        assert asyncio.get_running_loop().time() - started < 1.0


async def test_a_receive_with_nothing_coming_fails_in_time(real: bool) -> None:
    """A receive that nothing answers fails after the client's timeout, saying nothing came."""
    async with TestClient(make_app(), real=real, timeout=0.2) as client:
        alice = await client.connect()
        started = asyncio.get_running_loop().time()
        with pytest.raises(AssertionError, match=r"nothing received within 0.2 s; received so far: \[\]"):
            await alice.receive()
        assert asyncio.get_running_loop().time() - started < 1.0


async def test_a_send_the_server_never_reads_fails_in_time() -> None:
    """A client whose server reads nothing more fails its send after the timeout instead of hanging.

    In memory only: over a real socket the kernel's buffers take megabytes before a send waits.
    """
    app = WebSuckets()
    group = CommandGroup()
    release = asyncio.Event()

    @group.command("hang")
    async def hang(socket: ServerConnection) -> None:
        await release.wait()  # the server reads no command of this client meanwhile

    app.include_command_group(group)
    async with TestClient(app, timeout=0.2) as client:
        alice = await client.connect()
        await alice.send("hang")
        try:
            with pytest.raises(AssertionError, match=r"could not send within 0.2 s"):  # noqa: PT012
                for _ in range(100):
                    await alice.send_raw("x" * 10_000)
        finally:
            release.set()


async def test_handlers_get_websuckets_connections_in_memory_too(real: bool) -> None:
    """In memory as over a socket, the handler's socket is the server's own connection class, with its subprotocol."""
    app = WebSuckets()
    group = CommandGroup()

    @group.command("inspect")
    async def inspect(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("inspected", {"class": type(socket).__name__, "subprotocol": socket.subprotocol})

    app.include_command_group(group)
    async with TestClient(app, real=real) as client:
        alice = await client.connect(subprotocols=["websuckets"])
        reply = await alice.request("inspect")
        assert reply.payload == {"class": "GuardedConnection", "subprotocol": "websuckets"}
