"""Streams: items a second from one generator to one client and to 64 at once, against raw websockets; cancel latency.

Loopback only. The servers run in a process of their own (the clients' reading is not counted
against them), both in the same run:

- ``websuckets``: a streaming command, ``bench items``, whose handler is an async generator
  yielding ``{"i": i}`` ``--items`` times (the framework sends each as
  ``{"event": "bench items", "payload": {"i": i}, "id": ...}``, then ``websuckets end``);
- ``raw websockets``: the hand-written loop a careful user writes without a framework, on a plain
  ``websockets`` server: parse the command, then ``await socket.send(...)`` the same frame per item
  (serialised with the same ``pydantic_core.to_json``), then an end frame.

Each client sends the command and reads every frame up to the end. ``items/s`` counts the
items every client received, over the wall time from the first command sent to the last end
read: one client's stream of ``--items``, then ``--clients`` streams of ``--each`` items at once
(one a client). The clients all live in this process, so with 64 of them the figure is bounded
by their reading as much as by the server.

Then cancel latency, with the server in this process: a client starts a stream whose
generator yields every 1 ms, reads a few items, sends ``websuckets cancel``; the time from the
cancel sent to the generator's ``finally`` block running (``cancel -> finally``), and to the
client reading the end (``cancel -> end read``), median and p99 over ``--cancels`` streams.

    python bench/streams.py [--items 20000] [--clients 64] [--each 1000] [--repeat 3] [--cancels 200] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from websuckets import CommandGroup, WebSuckets

EVENT = "bench items"
END = b'"websuckets end"'
RAW_END = b'"end"'


class Items(BaseModel):
    n: int
    pause: float = 0.0


def make_app(cancelled: list[float] | None = None) -> WebSuckets:
    """The websuckets server: one streaming command (``cancelled`` notes when each generator's finally ran)."""
    app = WebSuckets(rate_limit=None, max_streams=4)
    group = CommandGroup("bench")

    @group.command("items")
    async def items(socket: ServerConnection, model: Items) -> AsyncIterator[dict[str, int]]:
        try:
            for i in range(model.n):
                yield {"i": i}
                if model.pause:
                    await asyncio.sleep(model.pause)
        finally:
            if cancelled is not None:
                cancelled.append(time.perf_counter())

    app.include_command_group(group)
    return app


async def raw_handler(socket: ServerConnection) -> None:
    """The hand-written loop: parse the command, send each item, then the end."""
    async for frame in socket:
        command = json.loads(frame)
        n, id = command["payload"]["n"], command["id"]
        for i in range(n):
            await socket.send(to_json({"event": EVENT, "payload": {"i": i}, "id": id}).decode())
        await socket.send(to_json({"event": "end", "payload": {"items": n}, "id": id}).decode())


def serve_both(ports: Any, ready: Any) -> None:
    """The server process: websuckets on one port, raw websockets on another, until killed."""

    async def run() -> None:
        app = make_app()
        async with app, app.serve("127.0.0.1", 0) as ours, serve(raw_handler, "127.0.0.1", 0) as raw:
            ports.extend([ours.sockets[0].getsockname()[1], raw.sockets[0].getsockname()[1]])
            ready.set()
            await asyncio.Future()

    asyncio.run(run())


async def read_stream(socket: ClientConnection, id: int, items: int, end: bytes) -> int:
    """Send the command, read frames up to the end; the items read."""
    await socket.send(json.dumps({"event": EVENT, "payload": {"n": items}, "id": id}))
    count = 0
    while True:
        frame = await socket.recv(decode=False)
        if end in frame:
            return count
        count += 1


async def items_per_second(url: str, clients: int, items: int, end: bytes) -> float:
    sockets = [await connect(url, max_size=None) for _ in range(clients)]
    try:
        await asyncio.gather(*(read_stream(s, 0, 100, end) for s in sockets))  # warm-up
        started = time.perf_counter()
        counts = await asyncio.gather(*(read_stream(s, n + 1, items, end) for n, s in enumerate(sockets)))
        elapsed = time.perf_counter() - started
    finally:
        for socket in sockets:
            await socket.close()
    assert counts == [items] * clients, counts
    return sum(counts) / elapsed


async def cancel_latency(cancels: int) -> tuple[list[float], list[float]]:
    """Seconds from each cancel sent to its generator's finally, and to its end read by the client."""
    finally_at: list[float] = []
    app = make_app(finally_at)
    to_finally, to_end = [], []
    async with app, app.serve("127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        async with connect(url) as socket:
            for id in range(1, cancels + 1):
                await socket.send(json.dumps({"event": EVENT, "payload": {"n": 1_000_000, "pause": 0.001}, "id": id}))
                for _ in range(3):
                    await socket.recv(decode=False)
                finally_at.clear()
                sent = time.perf_counter()
                await socket.send(json.dumps({"event": "websuckets cancel", "id": id}))
                while END not in await socket.recv(decode=False):
                    pass
                to_end.append(time.perf_counter() - sent)
                to_finally.append(finally_at[0] - sent)
    return to_finally, to_end


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main(items: int, clients: int, each: int, repeat: int, cancels: int) -> None:
    context = multiprocessing.get_context("spawn")
    ports, ready = context.Manager().list(), context.Event()
    server = context.Process(target=serve_both, args=(ports, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the server process did not start")
        ours, raw = (f"ws://127.0.0.1:{port}/" for port in ports)
        rows = []
        for count in (1, clients):
            per_client = items if count == 1 else each
            ours_rate = statistics.median([await items_per_second(ours, count, per_client, END) for _ in range(repeat)])
            raw_rate = statistics.median(
                [await items_per_second(raw, count, per_client, RAW_END) for _ in range(repeat)]
            )
            rows.append((count, per_client, ours_rate, raw_rate))
    finally:
        server.kill()
        server.join()
    to_finally, to_end = await cancel_latency(cancels)
    print(f"items per stream: {items} (1 client), {each} each ({clients} clients); runs: {repeat} (median)")
    print("| clients | items/stream | websuckets items/s | raw websockets items/s | ratio websuckets / raw |")
    print("|--------:|-------------:|-------------------:|-----------------------:|-----------------------:|")
    for count, per_client, ours_rate, raw_rate in rows:
        print(
            f"| {count:7d} | {per_client:12d} | {ours_rate:18.0f} | {raw_rate:22.0f} | {ours_rate / raw_rate:22.2f} |"
        )
    for count, _, ours_rate, raw_rate in rows:
        print(
            f"ratio websuckets / raw websockets, {count} client{'s' if count > 1 else ''}: {ours_rate / raw_rate:.2f}"
        )
    print(f"cancels: {cancels}")
    print("| cancel latency | p50 (ms) | p99 (ms) |")
    print("|----------------|---------:|---------:|")
    for name, values in (("cancel -> finally", to_finally), ("cancel -> end read", to_end)):
        print(f"| {name} | {percentile(values, 0.5) * 1e3:8.3f} | {percentile(values, 0.99) * 1e3:8.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000, help="items of the one client's stream")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--each", type=int, default=1_000, help="items of each stream when --clients run at once")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cancels", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="2,000 items, 100 each, one run, 20 cancels")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.items, arguments.each, arguments.repeat, arguments.cancels = 2_000, 100, 1, 20
    asyncio.run(main(arguments.items, arguments.clients, arguments.each, arguments.repeat, arguments.cancels))
