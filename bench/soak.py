"""Soak and abuse runs: what the server still holds after thousands of clients, and what hostile ones get.

Loopback only; every loop is bounded in count and in time. Each scenario returns its figures
and ``main`` prints them; none is asserted here (tests/test_soak.py checks the invariants
behind them, never a timing):

- ``cycles``: clients connect, send one command, get the reply and leave, ``--concurrency``
  at a time: ``Session.online``, dishka SESSION and REQUEST scopes opened and closed, asyncio
  tasks, file descriptors, live websuckets objects and RSS, before and after;
- ``idle``: connections opened by a client in another process and left idle: the server's RSS
  per connection, compression off (the default) and on;
- ``cap``: more handshakes at once than ``max_connections``, some of them slow to authenticate;
- ``slow``: clients that ask for a stream of data and never read it, while another client works;
- ``silent``: a client that completes the handshake, then answers nothing, not even pings;
- ``origin`` and ``auth``: handshakes from a foreign origin, and with tokens the app never issued;
- ``hostile``: 100,000 nested arrays, a frame over ``max_message_size``, one over four times it.

    python bench/soak.py [--cycles 10000] [--idle 5000] [--only cycles,idle,cap,slow,silent,origin,auth,hostile]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from dishka import FromDishka, Provider, Scope, make_async_container, provide
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request

from websuckets import CommandGroup, Context, Session, Token, User, WebSuckets
from websuckets.connection import GuardedConnection
from websuckets.di import WebSucketsProvider
from websuckets.dispatcher import Connection
from websuckets.handshake_auth import HandshakeAuth

Figures = dict[str, Any]

DEADLINE = 120.0
"""No scenario runs longer than this many seconds."""


# what the server holds


def rss_kib() -> int:
    """This process's resident memory, in KiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def drop_cancelled_timers() -> None:
    """Have asyncio drop the cancelled timers its heap still holds, with their contexts.

    It drops them lazily: once they are over half of its timers (and there are over 100), or as
    each one comes due. So how many wait at a given moment varies from run to run (40 more, or
    fewer, in a long test session), and they are asyncio's, not the app's. A thousand timers
    cancelled at once tip the balance, and the next turn of the loop drops them all.
    """
    loop = asyncio.get_running_loop()
    for handle in [loop.call_later(3600, int) for _ in range(1000)]:
        handle.cancel()
    await asyncio.sleep(0)


def kinds_of_objects() -> Counter[str]:
    """How many objects the collector tracks, by type (after a full collection)."""
    gc.collect()
    return Counter(f"{type(item).__module__}.{type(item).__qualname__}" for item in gc.get_objects())


def live_objects() -> tuple[int, int]:
    """websuckets' per-connection and per-command objects still alive, and all objects the
    collector tracks, after a full collection."""
    gc.collect()
    kinds = (User, Connection, Context, GuardedConnection)
    tracked = gc.get_objects()
    return sum(1 for item in tracked if isinstance(item, kinds)), len(tracked)


@dataclass
class Scopes:
    """dishka scopes opened and closed, counted by the finalizers of their dependencies."""

    opened: dict[str, int] = field(default_factory=lambda: {"session": 0, "request": 0})
    closed: dict[str, int] = field(default_factory=lambda: {"session": 0, "request": 0})

    @property
    def open(self) -> int:
        return sum(self.opened.values()) - sum(self.closed.values())


class PerConnection:
    pass


class PerCommand:
    pass


class SoakProvider(Provider):
    def __init__(self, scopes: Scopes) -> None:
        super().__init__()
        self.scopes = scopes

    @provide(scope=Scope.SESSION)
    async def per_connection(self) -> AsyncIterator[PerConnection]:
        self.scopes.opened["session"] += 1
        yield PerConnection()
        self.scopes.closed["session"] += 1

    @provide(scope=Scope.REQUEST)
    async def per_command(self, connection: PerConnection) -> AsyncIterator[PerCommand]:
        self.scopes.opened["request"] += 1
        yield PerCommand()
        self.scopes.closed["request"] += 1


@dataclass
class Soak:
    """An app for the runs, with what it counts."""

    app: WebSuckets
    scopes: Scopes
    closes_sent: list[int | None] = field(default_factory=list)
    """The close code the server sent each connection that left (``None``: it sent none)."""


def make_app(**options: Any) -> Soak:
    scopes = Scopes()
    container = make_async_container(SoakProvider(scopes), WebSucketsProvider())
    app = WebSuckets(container=container, **options)
    soak = Soak(app, scopes)
    group = CommandGroup("soak")

    @group.command("echo")
    async def echo(socket: ServerConnection, ctx: Context, work: FromDishka[PerCommand]) -> None:
        await ctx.reply("echo", ctx.payload)

    @group.command("stream")
    async def stream(socket: ServerConnection) -> None:
        chunk = "x" * 65536
        for _ in range(100_000):  # 6 GiB at most: the client is closed long before
            await socket.send(chunk)

    @app.on_disconnect
    async def gone(socket: ServerConnection, connection: FromDishka[PerConnection]) -> None:
        close = socket.protocol.close_sent
        soak.closes_sent.append(close.code if close is not None else None)

    app.include_command_group(group)
    return soak


def snapshot(soak: Soak) -> Figures:
    ours, tracked = live_objects()
    return {
        "online": len(Session.online),
        "serving": soak.app.dispatcher.open_connections,
        "open_scopes": soak.scopes.open,
        "tasks": len(asyncio.all_tasks()),
        "fds": open_fds(),
        "live_objects": ours,
        "gc_objects": tracked,
        "rss_kib": rss_kib(),
    }


async def settle(soak: Soak, fds: int | None = None, tasks: int | None = None, limit: float = 10.0) -> None:
    """Wait (at most ``limit`` seconds) until no client is online and fds and tasks are down to the figures given."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        done = len(Session.online) == 0 and soak.app.dispatcher.open_connections == 0
        done = done and (fds is None or open_fds() <= fds) and (tasks is None or len(asyncio.all_tasks()) <= tasks)
        if done:
            return
        await asyncio.sleep(0.02)


async def until(condition: Callable[[], bool], every: float = 0.005) -> None:
    """Poll ``condition`` (the callers bound the wait with a timeout)."""
    while not condition():  # noqa: ASYNC110  (polling a state nothing signals; the caller's timeout bounds it)
        await asyncio.sleep(every)


def url_of(server: Any) -> str:
    return f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


# scenarios


async def cycles(count: int = 10_000, concurrency: int = 20, warmup: int = 500) -> Figures:
    """``count`` clients connect, send a command that injects a REQUEST service, get the reply, and leave."""
    soak = make_app(rate_limit=None)
    async with soak.app, soak.app.serve("127.0.0.1", 0) as server:
        url = url_of(server)

        async def client(numbers: range) -> None:
            for number in numbers:
                async with connect(url, compression=None) as ws:
                    await ws.send(json.dumps({"event": "soak echo", "payload": number, "id": number}))
                    reply = json.loads(await ws.recv())
                    assert reply["payload"] == number, reply

        async def run(total: int) -> None:
            share = -(-total // concurrency)
            async with asyncio.timeout(DEADLINE):
                await asyncio.gather(
                    *(client(range(i * share, min(total, (i + 1) * share))) for i in range(concurrency))
                )

        await run(warmup)
        await settle(soak)
        await drop_cancelled_timers()
        kinds_before = kinds_of_objects()
        before = snapshot(soak)
        started = time.perf_counter()
        await run(count)
        elapsed = time.perf_counter() - started
        await settle(soak, fds=before["fds"], tasks=before["tasks"])
        await drop_cancelled_timers()
        after = snapshot(soak)
        grown = (kinds_of_objects() - kinds_before).most_common(5)
    return {
        "cycles": count,
        "seconds": elapsed,
        "cycles_per_s": count / elapsed,
        "before": before,
        "after": after,
        "scopes_opened": dict(soak.scopes.opened),
        "scopes_closed": dict(soak.scopes.closed),
        "rss_growth_kib": after["rss_kib"] - before["rss_kib"],
        "gc_objects_growth": after["gc_objects"] - before["gc_objects"],
        "gc_growth_by_type": dict(grown),
    }


async def idle(count: int = 5_000, compression: str | None = None) -> Figures:
    """``count`` connections opened by another process and left idle: the server's RSS per connection."""
    soak = make_app(compression=compression, max_connections=count + 10)
    async with soak.app, soak.app.serve("127.0.0.1", 0) as server:
        await settle(soak)
        before = snapshot(soak)
        command = [sys.executable, __file__, "--idle-client", url_of(server), str(count)]
        if compression is not None:
            command.append("--deflate")
        client = await asyncio.create_subprocess_exec(
            *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert client.stdin is not None
        assert client.stdout is not None
        try:
            async with asyncio.timeout(DEADLINE):
                line = (await client.stdout.readline()).decode()
                if not line.startswith("open"):
                    stderr = (await client.stderr.read()).decode() if client.stderr else ""
                    raise RuntimeError(f"the idle client failed: {line!r} {stderr[-2000:]}")
                await until(lambda: len(Session.online) >= count)  # the last handlers may still be starting
            await asyncio.sleep(0.5)
            held = snapshot(soak)
        finally:
            client.stdin.write(b"close\n")
            await client.stdin.drain()
            await asyncio.wait_for(client.wait(), 60)
        await settle(soak, fds=before["fds"], limit=30)
        after = snapshot(soak)
    return {
        "connections": count,
        "compression": compression or "off",
        "kib_per_connection": (held["rss_kib"] - before["rss_kib"]) / count,
        "online_while_open": held["online"],
        "before": before,
        "after": after,
    }


async def idle_client(url: str, count: int, deflate: bool) -> None:
    """The other process of `idle`: opens ``count`` raw websockets, says so, waits for a line, closes them."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    extensions = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if deflate else ""
    writers: list[asyncio.StreamWriter] = []
    gate = asyncio.Semaphore(100)

    async def one() -> None:
        async with gate:
            reader, writer = await asyncio.open_connection(host, int(port))
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extensions}\r\n".encode()
            )
            response = await reader.readuntil(b"\r\n\r\n")
            if not response.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(response.decode(errors="replace"))
            writers.append(writer)

    async with asyncio.timeout(DEADLINE):
        await asyncio.gather(*(one() for _ in range(count)))
    print(f"open {len(writers)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for writer in writers:
        writer.close()


async def cap(limit: int = 200, attempts: int = 300, slow_auth: float = 0.0) -> Figures:
    """``attempts`` handshakes at once against ``max_connections=limit``; with ``slow_auth``, each
    authenticates at the handshake through an ``authorize`` hook that takes that many seconds
    (a shared backend's round trip)."""
    options: dict[str, Any] = {"max_connections": limit}
    headers: dict[str, str] = {}
    if slow_auth:

        async def authorize(user_id: object, request: Request) -> bool:
            await asyncio.sleep(slow_auth)
            return True

        options["handshake_auth"] = HandshakeAuth(authorize=authorize)
    soak = make_app(**options)
    async with soak.app, soak.app.serve("127.0.0.1", 0) as server:
        url = url_of(server)
        if slow_auth:
            headers["Authorization"] = f"Bearer {soak.app.issue_token('soak')}"

        async def attempt() -> ClientConnection | int:
            try:
                return await connect(url, additional_headers=headers, compression=None, open_timeout=30)
            except InvalidStatus as refused:
                return refused.response.status_code

        async with asyncio.timeout(DEADLINE):
            results = await asyncio.gather(*(attempt() for _ in range(attempts)))
            opened = [result for result in results if isinstance(result, ClientConnection)]
            await asyncio.sleep(0.2)
            serving = soak.app.dispatcher.open_connections
            online = len(Session.online)
            for ws in opened:
                await ws.close()
            await settle(soak)
            async with connect(url, additional_headers=headers, compression=None):
                reopened = True
    refused = [result for result in results if isinstance(result, int)]
    return {
        "limit": limit,
        "attempts": attempts,
        "slow_auth_s": slow_auth,
        "accepted": len(opened),
        "refused_503": refused.count(503),
        "refused_other": len(refused) - refused.count(503),
        "serving_at_peak": serving,
        "online_at_peak": online,
        "accepted_after_close": reopened,
    }


async def slow_readers(count: int = 20, send_timeout: float = 1.0, seconds: float = 10.0) -> Figures:
    """``count`` clients ask for an endless stream and never read; another client sends a command every 10 ms."""
    soak = make_app(send_timeout=send_timeout, rate_limit=None)
    async with soak.app, soak.app.serve("127.0.0.1", 0) as server:
        url = url_of(server)
        readers = [await connect(url, max_queue=1, compression=None) for _ in range(count)]
        for ws in readers:
            await ws.send(json.dumps({"event": "soak stream"}))
        started = time.perf_counter()
        latencies: list[float] = []
        gone_after: float | None = None
        async with connect(url, compression=None) as normal:
            while time.perf_counter() - started < seconds:
                sent = time.perf_counter()
                await normal.send(json.dumps({"event": "soak echo", "payload": len(latencies), "id": 1}))
                await asyncio.wait_for(normal.recv(), 10)
                latencies.append((time.perf_counter() - sent) * 1e3)
                if gone_after is None and len(Session.online) == 1:  # only the normal client is left
                    gone_after = time.perf_counter() - started
                if gone_after is not None and len(latencies) >= 100:
                    break
                await asyncio.sleep(0.01)
        for ws in readers:
            ws.transport.abort()
        await settle(soak)
        after = snapshot(soak)
    latencies.sort()
    readers_closes = soak.closes_sent[:-1] if soak.closes_sent else []
    return {
        "slow_readers": count,
        "send_timeout_s": send_timeout,
        "all_gone_after_s": gone_after,
        "closed_with_1013": sum(1 for code in soak.closes_sent if code == 1013),
        "other_closes": sorted(str(code) for code in readers_closes if code != 1013),
        "normal_requests": len(latencies),
        "normal_p50_ms": statistics.median(latencies),
        "normal_max_ms": latencies[-1],
        "after": after,
    }


async def silent_peer(ping_interval: float = 0.5, ping_timeout: float = 0.5) -> Figures:
    """A client completes the opening handshake, then reads nothing and answers nothing."""
    soak = make_app(ping_interval=ping_interval, ping_timeout=ping_timeout)
    async with soak.app, soak.app.serve("127.0.0.1", 0) as server:
        _, writer = await raw_handshake(url_of(server))
        started = time.perf_counter()
        async with asyncio.timeout(ping_interval + ping_timeout + 30):
            await until(lambda: len(Session.online) > 0)
            await until(lambda: len(Session.online) == 0)
        gone_after = time.perf_counter() - started
        await settle(soak)
        after = snapshot(soak)
        writer.close()
    return {
        "ping_interval_s": ping_interval,
        "ping_timeout_s": ping_timeout,
        "left_online_after_s": gone_after,
        "bound_s": ping_interval + ping_timeout,
        "session_scopes_closed": soak.scopes.closed["session"],
        "after": after,
    }


async def refused_handshakes(kind: str, count: int = 1_000) -> Figures:
    """``count`` handshakes that the app refuses: from a foreign origin, or with an unknown token."""
    options: dict[str, Any] = {"handshake_auth": HandshakeAuth()} if kind == "auth" else {}
    soak = make_app(**options)
    async with soak.app, soak.app.serve("127.0.0.1", 0) as server:
        url = url_of(server)
        await settle(soak)
        before = snapshot(soak)

        async def attempt() -> int:
            kwargs: dict[str, Any] = {"compression": None}
            if kind == "auth":
                kwargs["additional_headers"] = {"Authorization": f"Bearer {Token.generate()}"}
            else:
                kwargs["origin"] = "https://evil.example"
            try:
                ws = await connect(url, **kwargs)
            except InvalidStatus as refused:
                return refused.response.status_code
            await ws.close()
            return 101

        started = time.perf_counter()
        statuses: list[int] = []
        async with asyncio.timeout(DEADLINE):
            for _ in range(count // 20):
                statuses += await asyncio.gather(*(attempt() for _ in range(20)))
        elapsed = time.perf_counter() - started
        await settle(soak, fds=before["fds"], tasks=before["tasks"])
        after = snapshot(soak)
    return {
        "kind": kind,
        "handshakes": len(statuses),
        "statuses": {str(status): statuses.count(status) for status in sorted(set(statuses))},
        "per_s": len(statuses) / elapsed,
        "sessions_opened": soak.scopes.opened["session"],
        "before": before,
        "after": after,
    }


async def hostile_frames(depth: int = 100_000) -> Figures:
    """Deep nesting and oversize frames: each answered with its error, then the connection still works
    (except over four times the size limit, which closes it with 1009)."""
    soak = make_app(rate_limit=None)
    limit = soak.app.max_message_size or 2**20
    replies: dict[str, Any] = {}
    async with soak.app, soak.app.serve("127.0.0.1", 0) as server:
        ws = await connect(url_of(server), compression=None, max_size=None)
        frames = {
            "nested_arrays": "[" * depth + "]" * depth,
            "nested_payload": '{"event": "soak echo", "payload": ' + '{"a": ' * depth + "1" + "}" * depth + "}",
            "over_size_limit": json.dumps({"event": "soak echo", "payload": "x" * limit}),
        }
        for name, frame in frames.items():
            await ws.send(frame)
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            replies[name] = reply["payload"]["name"]
            await ws.send(json.dumps({"event": "soak echo", "payload": name, "id": 1}))
            replies[name + "_then"] = json.loads(await asyncio.wait_for(ws.recv(), 10))["event"]
        # written without send(), and never closed from this side: the server closes while 4 MiB
        # are still on their way, and websockets' client would then abort a transport that
        # asyncio has already closed (an AttributeError in asyncio's selector transport)
        ws.protocol.send_text(b"x" * (4 * limit + 1))
        ws.send_data()
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as closed:
            replies["over_four_times"] = closed.rcvd.code if closed.rcvd is not None else None
        await settle(soak)
        after = snapshot(soak)
    return {"depth": depth, "replies": replies, "after": after}


async def raw_handshake(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that completes the opening handshake by hand, then does nothing at all."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = await reader.readuntil(b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 101"), response
    return reader, writer


# the report

SCENARIOS: dict[str, Callable[[argparse.Namespace], Awaitable[list[Figures]]]] = {}


def scenario(name: str) -> Callable[[Callable[[argparse.Namespace], Awaitable[list[Figures]]]], Any]:
    def register(function: Callable[[argparse.Namespace], Awaitable[list[Figures]]]) -> Any:
        SCENARIOS[name] = function
        return function

    return register


@scenario("cycles")
async def _cycles(options: argparse.Namespace) -> list[Figures]:
    return [await cycles(options.cycles, options.concurrency)]


@scenario("idle")
async def _idle(options: argparse.Namespace) -> list[Figures]:
    return [await idle(options.idle, None), await idle(options.idle, "deflate")]


@scenario("cap")
async def _cap(options: argparse.Namespace) -> list[Figures]:
    return [await cap(), await cap(limit=50, attempts=100, slow_auth=0.05)]


@scenario("slow")
async def _slow(options: argparse.Namespace) -> list[Figures]:
    return [await slow_readers()]


@scenario("silent")
async def _silent(options: argparse.Namespace) -> list[Figures]:
    return [await silent_peer()]


@scenario("origin")
async def _origin(options: argparse.Namespace) -> list[Figures]:
    return [await refused_handshakes("origin")]


@scenario("auth")
async def _auth(options: argparse.Namespace) -> list[Figures]:
    return [await refused_handshakes("auth")]


@scenario("hostile")
async def _hostile(options: argparse.Namespace) -> list[Figures]:
    return [await hostile_frames()]


def show(name: str, figures: Figures) -> None:
    print(f"### {name}")
    for key, value in figures.items():
        if isinstance(value, float):
            value = f"{value:,.2f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        print(f"- {key}: {value}")
    print(flush=True)


async def main(options: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.ERROR)  # refusals and closes are logged as they should be: not shown here
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; figures, not assertions\n")
    for name in options.only:
        for figures in await SCENARIOS[name](options):
            show(name, figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--idle", type=int, default=5_000)
    parser.add_argument("--only", type=lambda text: text.split(","), default=list(SCENARIOS))
    parser.add_argument("--idle-client", nargs=2, metavar=("URL", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--deflate", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.idle_client:
        asyncio.run(idle_client(arguments.idle_client[0], int(arguments.idle_client[1]), arguments.deflate))
    else:
        asyncio.run(main(arguments))
