"""Streams: a handler written as an async generator answers one command with many events, then an end.

Each test runs twice (the ``real`` fixture): in memory, and against a real server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from dishka import FromDishka, Provider, Scope, make_async_container, provide
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import CallNext, ClientEvent, CommandGroup, Context, InternalError, WebSuckets
from websuckets.di import WebSucketsProvider
from websuckets.exc import InvalidHandler
from websuckets.middleware import CommandTimeouts, RateLimit
from websuckets.streams import stats
from websuckets.testing import ErrorReply, TestClient
from websuckets.wire import CANCEL_EVENT, STREAM_END_EVENT


class Count(BaseModel):
    n: int
    pause: float = 0.0


class Resource:
    """A REQUEST-scoped service whose finalizer notes that it ran."""

    def __init__(self) -> None:
        self.open = True


class Probe:
    """What the handlers saw: finally blocks run, finalizers run, items produced."""

    def __init__(self) -> None:
        self.finally_ran: list[int] = []
        self.finalized: list[Resource] = []
        self.produced = 0
        self.middleware: list[str] = []


def make_app(probe: Probe, **options: object) -> WebSuckets:
    class Services(Provider):
        @provide(scope=Scope.REQUEST)
        async def resource(self) -> AsyncIterator[Resource]:
            resource = Resource()
            yield resource
            resource.open = False
            probe.finalized.append(resource)

    container = make_async_container(Services(), WebSucketsProvider())
    app = WebSuckets(container=container, **options)  # type: ignore[arg-type]
    group = CommandGroup()

    @group.command("count")
    async def count(socket: ServerConnection, model: Count) -> AsyncIterator[int]:
        try:
            for i in range(model.n):
                probe.produced += 1
                yield i
                if model.pause:
                    await asyncio.sleep(model.pause)
        finally:
            probe.finally_ran.append(model.n)

    @group.command("events")
    async def events(socket: ServerConnection, ctx: Context) -> AsyncIterator[ClientEvent]:
        yield ClientEvent("hit", {"title": "a"})
        await ctx.reply("progress", 50)
        yield ClientEvent("hit", {"title": "b"})

    @group.command("injected")
    async def injected(socket: ServerConnection, resource: FromDishka[Resource]) -> AsyncIterator[bool]:
        while True:
            yield resource.open
            await asyncio.sleep(0.01)

    @group.command("fails")
    async def fails(socket: ServerConnection, model: Count) -> AsyncIterator[int]:
        for i in range(model.n):
            yield i
        raise InternalError("search_failed", {"after": model.n})

    @group.command("crashes")
    async def crashes(socket: ServerConnection) -> AsyncIterator[int]:
        yield 1
        raise KeyError("bug")

    @group.command("big")
    async def big(socket: ServerConnection) -> AsyncIterator[str]:
        while True:
            probe.produced += 1
            yield "x" * 65536

    @group.command("ping")
    async def ping(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("pong")

    async def note(ctx: Context, call_next: CallNext) -> None:
        probe.middleware.append(f"before {ctx.event}")
        await call_next(ctx)
        probe.middleware.append(f"after {ctx.event}")

    group.add_middleware(note)
    app.include_command_group(group)
    return app


async def test_items_then_end(real: bool) -> None:
    """Each yielded item goes out tagged with the command's id, as an event named after the command; then the end."""
    probe = Probe()
    async with TestClient(make_app(probe), real=real) as client:
        alice = await client.connect()
        stream = await alice.stream("count", {"n": 3}, id=7)
        items = [item async for item in stream]
        assert [(i.event, i.payload, i.id) for i in items] == [("count", 0, 7), ("count", 1, 7), ("count", 2, 7)]
        assert stream.end is not None
        assert stream.end.event == STREAM_END_EVENT
        assert stream.end.payload == {"items": 3, "cancelled": False}
        assert stream.end.id == 7
        assert probe.finally_ran == [3]
        assert probe.middleware == ["before count", "after count"]  # the chain covers the whole stream


async def test_client_events_keep_their_names(real: bool) -> None:
    """A yielded ClientEvent goes out as that event, with the id added; ctx.reply in a stream carries it too."""
    async with TestClient(make_app(Probe()), real=real) as client:
        alice = await client.connect()
        items = await (await alice.stream("events", id="s1")).collect()
        assert [(i.event, i.payload, i.id) for i in items] == [
            ("hit", {"title": "a"}, "s1"),
            ("progress", 50, "s1"),
            ("hit", {"title": "b"}, "s1"),
        ]


async def test_an_exception_ends_the_stream_with_its_error(real: bool) -> None:
    """An InternalError becomes the error event for the id (its name and details); nothing follows it."""
    async with TestClient(make_app(Probe()), real=real) as client:
        alice = await client.connect()
        stream = await alice.stream("fails", {"n": 2}, id=3)
        with pytest.raises(ErrorReply) as raised:
            [item async for item in stream]
        assert len(stream.items) == 2
        error = raised.value.received
        assert error.error_name == "search_failed"
        assert error.payload["details"] == {"after": 2}
        assert error.payload["id"] == 3
        assert error.payload["event"] == "fails"
        assert (await alice.request("ping")).event == "pong"  # the connection goes on


async def test_an_unexpected_exception_is_internal_error() -> None:
    """Any other exception: internal_error for the id, the traceback to the log and the test."""
    async with TestClient(make_app(Probe())) as client:
        alice = await client.connect()
        stream = await alice.stream("crashes", id=1)
        with pytest.raises(KeyError):  # TestClient re-raises the handler's exception in the test
            await stream.collect()
        error = await alice.receive_error("internal_error")
        assert error.payload["id"] == 1
        assert error.payload["details"] is None


async def test_cancel_closes_the_generator(real: bool) -> None:
    """websuckets cancel closes the generator: its finally runs, and the stream ends with cancelled: true."""
    probe = Probe()
    async with TestClient(make_app(probe), real=real) as client:
        alice = await client.connect()
        stream = await alice.stream("count", {"n": 1000, "pause": 0.01})
        assert (await stream.next()).payload == 0
        end = await stream.cancel()
        assert end.event == STREAM_END_EVENT
        assert end.payload["cancelled"] is True
        assert end.payload["items"] >= 1
        assert probe.finally_ran == [1000]
        await alice.send(CANCEL_EVENT, id=stream.id)  # no stream any more: ignored
        assert (await alice.request("ping")).event == "pong"


async def test_cancel_runs_request_scope_finalizers(real: bool) -> None:
    """The REQUEST scope lives as long as the stream; a cancel closes it, running its finalizers."""
    probe = Probe()
    async with TestClient(make_app(probe), real=real) as client:
        alice = await client.connect()
        stream = await alice.stream("injected")
        assert (await stream.next()).payload is True
        assert (await stream.next()).payload is True  # still open: the scope outlives the first item
        assert probe.finalized == []
        await stream.cancel()
        assert len(probe.finalized) == 1
        assert probe.finalized[0].open is False


async def test_disconnect_cancels_every_stream(real: bool) -> None:
    """A client that leaves: each of its streams is closed, finally blocks and finalizers run."""
    probe = Probe()
    cancelled = stats.cancelled
    async with TestClient(make_app(probe), real=real) as client:
        alice = await client.connect()
        one = await alice.stream("count", {"n": 1000, "pause": 0.01})
        two = await alice.stream("injected")
        await one.next()
        await two.next()
        await alice.close()  # returns once the server has seen the client leave
        assert probe.finally_ran == [1000]
        assert len(probe.finalized) == 1
        assert stats.cancelled == cancelled + 2


async def test_streams_and_commands_interleave(real: bool) -> None:
    """The connection goes on reading while a stream runs: another command is answered meanwhile."""
    async with TestClient(make_app(Probe()), real=real) as client:
        alice = await client.connect()
        stream = await alice.stream("count", {"n": 1000, "pause": 0.01})
        await stream.next()
        assert (await alice.request("ping")).event == "pong"
        await stream.cancel()


async def test_too_many_streams(real: bool) -> None:
    """Past max_streams at once a stream is refused with too_many_streams; once one ends another may start."""
    async with TestClient(make_app(Probe(), max_streams=2), real=real) as client:
        alice = await client.connect()
        first = await alice.stream("count", {"n": 1000, "pause": 0.01})
        await alice.stream("count", {"n": 1000, "pause": 0.01})
        third = await alice.stream("count", {"n": 1})
        with pytest.raises(ErrorReply) as raised:
            await third.next()
        assert raised.value.received.error_name == "too_many_streams"
        assert raised.value.received.payload["details"] == {"limit": 2}
        await first.cancel()
        assert [i.payload for i in await (await alice.stream("count", {"n": 2})).collect()] == [0, 1]


async def test_a_stream_needs_an_id_of_its_own() -> None:
    """Without an id, or with the id of a running stream, the command is refused with invalid_command."""
    async with TestClient(make_app(Probe())) as client:
        alice = await client.connect()
        await alice.send("count", {"n": 1})
        assert "id" in (await alice.receive_error("invalid_command")).payload["details"]
        running = await alice.stream("count", {"n": 1000, "pause": 0.01}, id=5)
        await running.next()
        with pytest.raises(ErrorReply) as raised:
            await (await alice.stream("count", {"n": 1}, id=5)).collect()
        assert raised.value.received.error_name == "invalid_command"


async def test_validation_applies(real: bool) -> None:
    """The payload is validated as for any command: validation_error for the id."""
    async with TestClient(make_app(Probe()), real=real) as client:
        alice = await client.connect()
        with pytest.raises(ErrorReply) as raised:
            await (await alice.stream("count", {"n": "many"})).collect()
        assert raised.value.received.error_name == "validation_error"


async def test_the_time_limit_bounds_the_whole_stream(real: bool) -> None:
    """CommandTimeouts counts the whole stream: past it the stream ends with command_timeout, finally run."""
    probe = Probe()
    async with TestClient(
        make_app(probe, command_timeouts=CommandTimeouts(per_command={"count": 0.2})), real=real
    ) as c:
        alice = await c.connect()
        stream = await alice.stream("count", {"n": 1000, "pause": 0.01})
        with pytest.raises(ErrorReply) as raised:
            await stream.collect()
        assert raised.value.received.error_name == "command_timeout"
        assert 1 <= len(stream.items) < 1000
        assert probe.finally_ran == [1000]


async def test_the_rate_limit_counts_a_stream_as_a_command() -> None:
    """Starting a stream spends one token of the connection's rate limit."""
    async with TestClient(make_app(Probe(), rate_limit=RateLimit(rate=0.01, burst=1, close_after=10))) as client:
        alice = await client.connect()
        await (await alice.stream("count", {"n": 1})).collect()
        with pytest.raises(ErrorReply) as raised:
            await (await alice.stream("count", {"n": 1})).collect()
        assert raised.value.received.error_name == "rate_limited"


async def test_backpressure_holds_the_generator() -> None:
    """A client that reads nothing: the generator waits once the write buffers are full, instead of running ahead.

    Over a real socket only: in memory, TestClient's connection takes every frame as it comes.
    """
    probe = Probe()
    async with TestClient(make_app(probe, send_timeout=None), real=True) as client:
        alice = await client.connect()
        stream = await alice.stream("big")
        await stream.next()
        await asyncio.sleep(0.3)
        held = probe.produced
        await asyncio.sleep(0.3)
        assert probe.produced == held  # waiting for the reader, not producing
        assert held < 400  # 64 KiB items: what the buffers (and the client's queue) hold, not more
        for _ in range(50):
            await stream.next()
        assert probe.produced > 50  # reading lets it go on
        await alice.close()


async def test_other_connections_do_not_wait_on_a_slow_reader() -> None:
    """While one client's stream waits for it to read, another client is served at once."""
    async with TestClient(make_app(Probe(), send_timeout=None), real=True) as client:
        slow, fast = await client.connect(), await client.connect()
        await (await slow.stream("big")).next()
        await asyncio.sleep(0.1)
        assert (await fast.request("ping")).event == "pong"
        await slow.close()


async def test_a_reader_that_stops_is_closed_with_1013(caplog: pytest.LogCaptureFixture) -> None:
    """The slow-consumer rule holds: a stream's send that waits past send_timeout closes the connection (1013),
    and the stream is closed like on any disconnect."""
    probe = Probe()
    async with TestClient(make_app(probe, send_timeout=0.2), real=True) as client:
        alice = await client.connect()
        await (await alice.stream("big")).next()
        for _ in range(100):  # read nothing meanwhile
            await asyncio.sleep(0.05)
            if client.app.dispatcher.open_connections == 0:
                break
        assert client.app.dispatcher.open_connections == 0
        assert "closing with 1013" in caplog.text
        assert await alice.expect_closed() in (1006, 1013)  # a client whose buffers are full may miss the close frame


async def test_hooks_cannot_stream() -> None:
    """A connect hook written as an async generator is refused at definition."""
    app = WebSuckets()

    async def hook(socket: ServerConnection) -> AsyncIterator[int]:
        yield 1

    with pytest.raises(InvalidHandler, match="only commands stream"):
        app.on_connect(hook)


def test_the_plan_knows_a_stream_and_its_items() -> None:
    """At registration: whether the handler streams, what it yields; the app gets the cancel command."""
    app = make_app(Probe())
    assert app.commands["count"].plan.streams
    assert app.commands["count"].plan.item_type is int
    assert app.commands["events"].plan.item_type is ClientEvent
    assert not app.commands["ping"].plan.streams
    assert CANCEL_EVENT in app.commands
    assert CANCEL_EVENT not in WebSuckets().commands


async def test_metrics_count_streams_and_items() -> None:
    """Metrics: streams started, their items, those cancelled; the stream is one command with its outcome."""
    from websuckets.metrics import Metrics

    app = make_app(Probe())
    metrics = Metrics(path=None)
    app.add_instrument(metrics)
    async with TestClient(app) as client:
        alice = await client.connect()
        await (await alice.stream("count", {"n": 3})).collect()
        running = await alice.stream("count", {"n": 1000, "pause": 0.01})
        await running.next()
        await running.cancel()
        await alice.send("count", {"n": 1})
        await alice.receive_error("invalid_command")
        figures = metrics.figures()
        assert figures.counters["streams_refused"] == 1
        assert figures.counters["streams"] == 2
        assert figures.counters["stream_items"] >= 4
        assert figures.counters["streams_cancelled"] == 1
        assert figures.commands["count", "ok"] == 1
        assert figures.commands["count", "cancelled"] == 1


async def test_tracing_spans_cover_the_stream() -> None:
    """Tracing: one span a stream, ended once the stream has ended."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from websuckets.tracing import Tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = make_app(Probe())
    app.add_instrument(Tracing(provider, sessions=False))
    async with TestClient(app) as client:
        alice = await client.connect()
        stream = await alice.stream("count", {"n": 3, "pause": 0.02})
        await stream.next()
        assert [s for s in exporter.get_finished_spans() if "count" in s.name] == []  # still streaming
        await stream.collect()
        await asyncio.sleep(0.05)
        spans = [s for s in exporter.get_finished_spans() if "count" in s.name]
        assert len(spans) == 1
        assert spans[0].end_time - spans[0].start_time >= 0.04e9  # type: ignore[operator]


async def test_a_client_over_its_rate_limit_with_streams_is_closed_with_1008(real: bool) -> None:
    """The rate limit's close (1008) works from a stream's task too: the connection's reader drains meanwhile."""
    limit = RateLimit(rate=0.01, burst=1, close_after=1)
    async with TestClient(make_app(Probe(), rate_limit=limit), real=real) as client:
        alice = await client.connect()
        await (await alice.stream("count", {"n": 1})).collect()
        for _ in range(3):
            await alice.send("count", {"n": 1}, id=uuid4().hex)
        assert await alice.expect_closed() == 1008


async def test_a_graceful_shutdown_cancels_running_streams() -> None:
    """Streams are not in-flight commands: the shutdown closes their connections at once (1001), closing them."""
    from websockets.asyncio.client import connect

    probe = Probe()
    app = make_app(probe, shutdown_timeout=5.0)
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as socket:
            await socket.send('{"event": "count", "payload": {"n": 100000, "pause": 0.01}, "id": 1}')
            await socket.recv()
            started = asyncio.get_running_loop().time()
            await app.shutdown(server)
            assert asyncio.get_running_loop().time() - started < 2.0
            assert probe.finally_ran == [100000]
            assert socket.close_code == 1001
