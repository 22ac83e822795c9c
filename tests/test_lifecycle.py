"""Connect and disconnect hooks, starting and stopping the app, graceful shutdown."""

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from dishka import FromDishka, Provider, Scope, make_async_container, provide
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from websuckets import ClientEvent, CommandGroup, Context, User, WebSuckets
from websuckets.di import WebSucketsProvider
from websuckets.exc import AppStateError, InternalError
from websuckets.testing import TestClient


class Greeting(str):
    pass


class GreetingProvider(Provider):
    @provide(scope=Scope.SESSION)
    async def greeting(self, user: User) -> AsyncIterator[Greeting]:
        yield Greeting(f"welcome {user.client_id}")


async def test_hooks_run_on_connect_and_disconnect_with_injection(real: bool) -> None:
    """on_connect and on_disconnect get the socket, the User and injected services."""
    events: list[str] = []
    app = WebSuckets(container=make_async_container(GreetingProvider(), WebSucketsProvider()))

    @app.on_connect
    async def hello(socket: ServerConnection, greeting: FromDishka[Greeting]) -> None:
        await socket.send(ClientEvent("hello", str(greeting)))

    @app.on_disconnect
    async def bye(user: User) -> None:
        events.append(f"bye {user.client_id}")

    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        assert (await alice.receive()).payload == f"welcome {alice.client_id}"
        await alice.close()
        assert events == [f"bye {alice.client_id}"]


async def test_on_connect_may_refuse_a_connection(real: bool) -> None:
    """An InternalError in on_connect is sent to the client, then the connection closes (1008)."""
    app = WebSuckets()

    @app.on_connect
    async def refuse(socket: ServerConnection) -> None:
        raise InternalError("full", "the server is full")

    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        error = await alice.receive_error("full")
        assert error.payload["details"] == "the server is full"
        assert await alice.expect_closed() == 1008


def test_hooks_are_checked_at_definition() -> None:
    """A hook asking for the Context of a command is refused when it is declared."""

    async def hook(ctx: Context) -> None: ...

    with pytest.raises(TypeError, match="hook: parameter 'ctx': a hook gets no context"):
        WebSuckets().on_connect(hook)


async def test_async_with_starts_and_stops_the_app_for_embedding() -> None:
    """`async with app:` plus `app.serve(...)` embeds the app in a larger asyncio program."""
    app = WebSuckets()
    group = CommandGroup()

    @group.command("hi")
    async def hi(socket: ServerConnection) -> None:
        await socket.send("hi")

    app.include_command_group(group)
    with pytest.raises(AppStateError, match="not started"):
        app.dispatcher  # noqa: B018
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send('{"event": "hi"}')
            assert await ws.recv() == "hi"
    assert not app.started


async def test_shutdown_lets_in_flight_commands_finish_then_closes_with_1001() -> None:
    """On shutdown a running command completes and its reply arrives before the 1001 close."""
    app = WebSuckets(shutdown_timeout=5)
    group = CommandGroup()
    started = asyncio.Event()

    @group.command("slow")
    async def slow(socket: ServerConnection) -> None:
        started.set()
        await asyncio.sleep(0.2)
        await socket.send("finished")

    app.include_command_group(group)
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send('{"event": "slow"}')
            await started.wait()
            shutdown = asyncio.create_task(app.shutdown(server))
            assert await ws.recv() == "finished"
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001
            await shutdown


async def test_app_call_serves_until_sigterm_and_prints_the_address(capsys: pytest.CaptureFixture[str]) -> None:
    """`await app(host, port)` prints one line with the address and stops on SIGTERM."""
    import os
    import signal

    app = WebSuckets()
    serving = asyncio.create_task(app("127.0.0.1", 0))
    printed = ""
    for _ in range(200):
        printed += capsys.readouterr().out
        if printed or serving.done():
            break
        await asyncio.sleep(0.01)
    assert re.fullmatch(r"websuckets: serving on ws://127\.0\.0\.1:\d+ \(press Ctrl\+C to stop\)\n", printed)
    await asyncio.sleep(0.05)  # the signal handlers are installed right after the line is printed
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serving, 5)
    assert not app.started


async def test_app_call_on_a_port_in_use_raises_before_the_app_starts(caplog: pytest.LogCaptureFixture) -> None:
    """`await app(host, port)` on a port taken raises EADDRINUSE first: nothing logs that it started and stopped."""
    import errno
    import socket

    app = WebSuckets()
    caplog.set_level("INFO", logger="websuckets")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="in use") as raised:
            await app("127.0.0.1", taken.getsockname()[1])
    assert raised.value.errno == errno.EADDRINUSE
    assert not app.started
    assert [r.getMessage() for r in caplog.records if r.name.startswith("websuckets")] == []


async def test_shutdown_is_bounded_when_a_command_never_ends(caplog: pytest.LogCaptureFixture) -> None:
    """A command stuck forever is cancelled after the timeouts; its SESSION finalizers still run."""
    finalized: list[str] = []

    class Session(Provider):
        @provide(scope=Scope.SESSION)
        async def greeting(self) -> AsyncIterator[Greeting]:
            yield Greeting("hi")
            finalized.append("session closed")

    app = WebSuckets(container=make_async_container(Session()), shutdown_timeout=0.2)
    group = CommandGroup()
    started = asyncio.Event()

    @group.command("stuck")
    async def stuck(socket: ServerConnection, greeting: FromDishka[Greeting]) -> None:
        started.set()
        await asyncio.Event().wait()

    app.include_command_group(group)
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send('{"event": "stuck"}')
            await started.wait()
            await asyncio.wait_for(app.shutdown(server), 5)
    assert finalized == ["session closed"]
    assert "shutdown: cancelling 1 connection handlers" in caplog.text


async def test_nothing_joins_a_started_app() -> None:
    """Groups, middlewares (of the app or of an included group) and hooks join before the app starts."""
    app = WebSuckets()
    group = CommandGroup("g")
    app.include_command_group(group)

    async def late_hook(socket: ServerConnection) -> None: ...

    async def late_middleware(ctx: Context, call_next: object) -> None: ...

    async with app:
        with pytest.raises(AppStateError, match="cannot add a connect hook once the app has started"):
            app.on_connect(late_hook)
        with pytest.raises(AppStateError, match="cannot add a disconnect hook once the app has started"):
            app.on_disconnect(late_hook)
        with pytest.raises(AppStateError, match="cannot add a middleware once the app has started"):
            app.add_middleware(late_middleware)  # type: ignore[arg-type]
        with pytest.raises(AppStateError, match="cannot add a middleware to group 'g' once an app including it"):
            group.add_middleware(late_middleware)  # type: ignore[arg-type]
        with pytest.raises(AppStateError, match="cannot register a command once the app has started"):
            group.command("late")(late_hook)


async def test_a_failing_session_finalizer_is_reported(real: bool, caplog: pytest.LogCaptureFixture) -> None:
    """An exception while closing a connection's SESSION scope is logged and raised in the test."""

    class Failing(Provider):
        @provide(scope=Scope.SESSION)
        async def greeting(self) -> AsyncIterator[Greeting]:
            yield Greeting("hi")
            raise OSError("could not flush")

    app = WebSuckets(container=make_async_container(Failing()))
    group = CommandGroup()

    @group.command("greet")
    async def greet(socket: ServerConnection, greeting: FromDishka[Greeting]) -> None:
        await socket.send(str(greeting))

    app.include_command_group(group)
    with pytest.raises(ExceptionGroup) as raised:  # noqa: PT012  (raised as the client closes)
        async with TestClient(app, real=real) as client:
            alice = await client.connect()
            await alice.send("greet")
            assert await alice.receive_text() == "hi"
            await alice.close()
    assert [str(e) for e in raised.value.exceptions] == ["could not flush"]  # dishka groups finalizer errors
    [record] = [r for r in caplog.records if r.name == "websuckets.dispatcher"]
    assert record.getMessage() == "unexpected error in a connection"
    assert record.exc_info is not None
