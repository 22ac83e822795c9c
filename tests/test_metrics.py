"""`Metrics`: scraped over real HTTP and read with prometheus_client's own text parser."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from http_get import http_get
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection

from websuckets import CallNext, CommandGroup, Context, InternalError, WebSuckets
from websuckets.backends import Backend, BackendHealth
from websuckets.metrics import Metrics
from websuckets.middleware import RateLimit, map_errors

APPS = Path(__file__).parent / "apps"


class Name(BaseModel):
    name: str


def make_app(metrics: Metrics) -> WebSuckets:
    app = WebSuckets(rate_limit=RateLimit(rate=0.001, burst=4, close_after=100))
    group = CommandGroup("user")

    @group.command("hello")
    async def hello(socket: ServerConnection, model: Name, ctx: Context) -> None:
        await ctx.reply("hi", model.name)

    @group.command("fail")
    async def fail(socket: ServerConnection) -> None:
        raise InternalError("nope")

    @group.command("crash")
    async def crash(socket: ServerConnection) -> None:
        raise RuntimeError("bug")

    app.include_command_group(group)
    app.add_instrument(metrics)
    return app


async def scrape(port: int, path: str = "/metrics") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and labels."""
    status, headers, body = await http_get(port, path)
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_scrape_counts_commands_outcomes_messages_and_bytes(caplog: pytest.LogCaptureFixture) -> None:
    """Commands by event and outcome, refused frames, rate limits, the duration histogram, messages and bytes."""
    caplog.set_level("CRITICAL", logger="websuckets")  # the crash's traceback is expected
    metrics = Metrics()
    app = make_app(metrics)
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as websocket:
            sent: list[dict[str, Any]] = [
                {"event": "user hello", "payload": {"name": "a"}},
                {"event": "user hello", "payload": {}},
                {"event": "user fail"},
                {"event": "user crash"},
                {"event": "user nobody"},
                {"event": "user hello", "payload": {"name": "b"}},  # the fifth routed one: over the burst of 4
            ]
            for command in sent:
                await websocket.send(json.dumps(command))
                await websocket.recv()
            await websocket.send("not json")
            await websocket.recv()
            samples = await scrape(port)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("websuckets_connections") == 1
    assert value("websuckets_commands_total", event="user hello", outcome="ok") == 1
    assert value("websuckets_commands_total", event="user hello", outcome="validation_error") == 1
    assert value("websuckets_commands_total", event="user hello", outcome="rate_limited") == 1
    assert value("websuckets_commands_total", event="user fail", outcome="nope") == 1
    assert value("websuckets_commands_total", event="user crash", outcome="internal_error") == 1
    assert value("websuckets_rate_limited_total") == 1
    assert value("websuckets_refused_frames_total", error="unknown_command") == 1
    assert value("websuckets_refused_frames_total", error="invalid_json") == 1
    assert value("websuckets_command_duration_seconds_count", event="user hello") == 3
    assert value("websuckets_command_duration_seconds_bucket", event="user hello", le="+Inf") == 3
    assert 0 < value("websuckets_command_duration_seconds_sum", event="user hello") < 1
    assert value("websuckets_messages_received_total") == 7
    assert value("websuckets_messages_sent_total") == 7
    assert value("websuckets_received_bytes_total") > sum(len(json.dumps(c)) for c in sent)
    assert value("websuckets_sent_bytes_total") > 7 * len('{"event":"error"}')
    assert value("websuckets_backend_connected") == 1
    assert ("websuckets_backend_reconnects_total", ()) in samples
    health = {
        f"websuckets_backend_{f.name}" + ("" if f.name == "connected" else "_total")
        for f in fields(BackendHealth)
        if f.type in ("bool", "int")  # the figures; the latest error is a string and a time
    }
    assert health <= {name for name, _ in samples}, "every BackendHealth figure is a metric"
    table = (Path(__file__).parent.parent / "docs" / "guide" / "observability.md").read_text()
    assert {name for name in health if f"| `{name}` |" not in table} == set(), "and a row of the guide's table"


async def test_path_is_configurable_and_upgrades_pass() -> None:
    """Metrics(path=...) serves there only; a websocket opened on that path still reaches the app."""
    app = make_app(Metrics(path="/internal/metrics"))
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        assert (await http_get(port, "/metrics"))[0] == 426
        async with connect(f"ws://127.0.0.1:{port}/internal/metrics") as websocket:
            await websocket.send(json.dumps({"event": "user hello", "payload": {"name": "a"}}))
            assert json.loads(await websocket.recv())["payload"] == "a"
        samples = await scrape(port, "/internal/metrics")
        assert samples[("websuckets_commands_total", (("event", "user hello"), ("outcome", "ok")))] == 1
        assert samples[("websuckets_connections", ())] == 0


def run_observed_app(multiprocess_dir: Path) -> subprocess.Popen[str]:
    """``websuckets run observed_app:app --port 0`` in multi-process mode."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PROMETHEUS_MULTIPROC_DIR": str(multiprocess_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "websuckets", "run", "observed_app:app", "--host", "127.0.0.1", "--port", "0"],
        cwd=APPS,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_multiprocess_mode_sums_over_processes(tmp_path: Path) -> None:
    """Two processes sharing PROMETHEUS_MULTIPROC_DIR: a scrape of either counts the commands of both."""
    processes = [run_observed_app(tmp_path) for _ in range(2)]
    try:
        ports = []
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            found = re.search(r"ws://127.0.0.1:(\d+)", line)
            assert found, line + (process.stderr.read() if process.stderr else "")
            ports.append(int(found.group(1)))
        for count, port in zip((2, 3), ports, strict=True):
            async with connect(f"ws://127.0.0.1:{port}/") as websocket:
                for _ in range(count):
                    await websocket.send(json.dumps({"event": "user hello", "payload": {"name": "a"}}))
                    await websocket.recv()
        key = ("websuckets_commands_total", (("event", "user hello"), ("outcome", "ok")))
        deadline = asyncio.get_running_loop().time() + 10
        while (await scrape(ports[0])).get(key) != 5:  # the other process syncs every 0.1 s
            assert asyncio.get_running_loop().time() < deadline, await scrape(ports[0])
            await asyncio.sleep(0.1)
        assert (await scrape(ports[1]))[key] == 5
    finally:
        for process in processes:
            process.terminate()
            process.communicate(timeout=10)


async def test_a_custom_error_middleware_keeps_its_place_and_outcomes_are_counted() -> None:
    """With an error middleware of the app's own, Metrics measures in a step of its own, right inside it."""
    seen: list[str] = []

    async def my_errors(ctx: Context, call_next: CallNext) -> None:
        seen.append(ctx.event)
        await map_errors(ctx, call_next)

    metrics = Metrics()
    app = WebSuckets(error_middleware=my_errors)
    group = CommandGroup()

    @group.command("fail")
    async def fail(socket: ServerConnection) -> None:
        raise InternalError("nope")

    app.include_command_group(group)
    app.add_instrument(metrics)
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as websocket:
            await websocket.send(json.dumps({"event": "fail"}))
            assert json.loads(await websocket.recv())["payload"]["name"] == "nope"
        samples = await scrape(port)
    assert seen == ["fail"]
    assert samples[("websuckets_commands_total", (("event", "fail"), ("outcome", "nope")))] == 1


async def test_fan_out_messages_are_counted_as_sent(make_backend: Callable[[], Backend]) -> None:
    """A broadcast's messages, written as one shared frame, count in messages and bytes sent, on every backend."""
    from websuckets import ClientEvent, Session

    app = WebSuckets(backend=make_backend())
    app.add_instrument(Metrics())
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        sockets = [await connect(f"ws://127.0.0.1:{port}/") for _ in range(3)]
        for _ in range(100):
            if len(Session.online) == 3:
                break
            await asyncio.sleep(0.01)
        before = await scrape(port)
        await Session.broadcast(ClientEvent("news", "x" * 100))
        for websocket in sockets:
            await websocket.recv()
        after = await scrape(port)
        for websocket in sockets:
            await websocket.close()
    key = ("websuckets_messages_sent_total", ())
    assert after[key] - before[key] == 3
    sent_bytes = ("websuckets_sent_bytes_total", ())
    assert after[sent_bytes] - before[sent_bytes] >= 3 * len(ClientEvent("news", "x" * 100))


async def test_an_error_middleware_that_answers_errors_with_a_function_is_fused_with_measuring() -> None:
    """An error middleware marked ``answers_errors_with`` gets Metrics' measuring in its step, as map_errors does."""
    from websuckets import startup
    from websuckets.middleware import mark
    from websuckets.middleware.errors import answer_error

    @mark(answers_errors_with=answer_error)
    async def my_errors(ctx: Context, call_next: CallNext) -> None:
        raise AssertionError("fused: Metrics' step answers errors with answer_error in its place")

    metrics = Metrics()
    app = WebSuckets(error_middleware=my_errors, rate_limit=None)
    group = CommandGroup()

    @group.command("fail")
    async def fail(socket: ServerConnection) -> None:
        raise InternalError("nope")

    app.include_command_group(group)
    app.add_instrument(metrics)
    step: Any = startup.chain_for(app, app.commands["fail"])
    assert step.__qualname__ == "chain(Metrics.error_middleware.<locals>.measure_and_map_errors)"
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as websocket:
            await websocket.send(json.dumps({"event": "fail"}))
            assert json.loads(await websocket.recv())["payload"]["name"] == "nope"
        samples = await scrape(port)
    assert samples[("websuckets_commands_total", (("event", "fail"), ("outcome", "nope")))] == 1


async def test_an_app_started_twice_measures_its_commands_both_times() -> None:
    """The same Metrics counts through a second start, fused with map_errors or in a step of its own."""

    async def my_errors(ctx: Context, call_next: CallNext) -> None:
        await map_errors(ctx, call_next)

    for error_middleware in (map_errors, my_errors):
        metrics = Metrics()
        app = make_app(metrics)
        app.error_middleware = error_middleware
        for _ in range(2):
            async with (
                app,
                app.serve("127.0.0.1", 0) as server,
                connect(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/") as websocket,
            ):
                await websocket.send(json.dumps({"event": "user hello", "payload": {"name": "a"}}))
                await websocket.recv()
        assert metrics.figures().commands[("user hello", "ok")] == 2, error_middleware
