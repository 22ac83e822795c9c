"""`Tracing`: spans recorded by the OpenTelemetry SDK's in-memory exporter, over a real socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, get_current_span
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, Context, InternalError, WebSuckets
from websuckets.tracing import SESSION_SPAN, Tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def client(exporter: InMemorySpanExporter) -> AsyncIterator[ClientConnection]:
    """A client of an app traced into ``exporter``."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = WebSuckets()
    group = CommandGroup("user")

    @group.command("hello")
    async def hello(socket: ServerConnection, ctx: Context) -> None:
        assert get_current_span().get_span_context().is_valid  # the handler runs inside the span
        await ctx.reply("hi")

    @group.command("fail")
    async def fail(socket: ServerConnection) -> None:
        raise InternalError("nope")

    @group.command("crash")
    async def crash(socket: ServerConnection) -> None:
        raise RuntimeError("bug")

    app.include_command_group(group)
    app.add_instrument(Tracing(tracer_provider=provider))
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as websocket:
            yield websocket
        await asyncio.sleep(0.05)  # the session span ends when the server sees the connection lost


async def ask(websocket: ClientConnection, **command: object) -> dict[str, object]:
    await websocket.send(json.dumps(command))
    return dict(json.loads(await websocket.recv()))


async def test_a_span_per_command_with_outcome_and_session_link(
    client: ClientConnection, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """Each command's span is named after its event, carries client id, outcome and error name, links the session."""
    caplog.set_level("CRITICAL", logger="websuckets")
    await ask(client, event="user hello", id=7)
    await ask(client, event="user fail")
    await ask(client, event="user crash")
    await client.close()
    await asyncio.sleep(0.1)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"user hello", "user fail", "user crash", SESSION_SPAN}
    hello, fail, crash, session = (spans[n] for n in ("user hello", "user fail", "user crash", SESSION_SPAN))
    assert hello.kind is SpanKind.SERVER
    client_id = session.attributes["websuckets.client_id"]
    assert dict(hello.attributes) == {
        "websuckets.client_id": client_id,
        "websuckets.outcome": "ok",
        "websuckets.command_id": 7,
    }
    assert (fail.attributes["websuckets.outcome"], fail.attributes["error.type"]) == ("nope", "nope")
    assert fail.status.status_code is StatusCode.ERROR
    assert crash.attributes["error.type"] == "internal_error"
    assert [event.name for event in crash.events] == ["exception"]
    assert [link.context.span_id for link in hello.links] == [session.context.span_id]
    assert hello.parent is None  # no traceparent: a trace of its own, not a child of the long session
    assert session.attributes["websuckets.close_code"] == 1000


async def test_traceparent_in_the_envelope_makes_the_span_a_child(
    client: ClientConnection, exporter: InMemorySpanExporter
) -> None:
    """A W3C traceparent in the command continues the client's trace; a malformed one is ignored."""
    await ask(client, event="user hello", traceparent=f"00-{TRACE_ID}-{PARENT_ID}-01")
    await ask(client, event="user hello", traceparent="garbage")
    await ask(client, event="user hello", traceparent=12)
    first, second, third = [span for span in exporter.get_finished_spans() if span.name == "user hello"]
    assert f"{first.context.trace_id:032x}" == TRACE_ID
    assert first.parent is not None
    assert f"{first.parent.span_id:016x}" == PARENT_ID
    assert second.parent is None
    assert third.parent is None
    assert f"{second.context.trace_id:032x}" != TRACE_ID
