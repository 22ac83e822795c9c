"""Fairness: one client pipelines commands as fast as it can; another measures its own latency.

Loopback only, bounded in time; the flooding client runs in a process of its own, so that its
work is not counted against the server's loop. The flooding client sends ``user echo`` commands
in batches of ``--batch`` frames, either reading its replies (``reading``) or never reading
them (``not-reading``); the measuring client sends one ``user echo`` at a time and records
each round trip. It prints p50/p99 of the measuring client for each mode, with the app's
default rate limit and without it, the server's CPU time per command it handled, and the
longest stretch of CPU time the server's event loop spent without coming back to a 1 ms
ticker (``stall``: what every other connection waits, whatever else runs on the machine).
``--no-yield`` turns the dispatcher's fairness yields off, ``--read-size 0`` parses whole
reads of up to 256 KiB (``websuckets.connection.READ_SIZE``): the figures before each fix.
``--loop uvloop`` serves on uvloop, as ``websuckets run`` does when it is installed.

    python bench/fairness.py [--seconds 3] [--batch 500] [--no-yield] [--read-size BYTES] [--loop uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import statistics
import time

from pydantic import BaseModel
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from websuckets import CommandGroup, Context, WebSuckets
from websuckets import connection as connection_module
from websuckets import dispatcher as dispatcher_module
from websuckets.app import DEFAULT_RATE_LIMIT
from websuckets.middleware import RateLimit

FRAME = json.dumps({"event": "user echo", "payload": {"nickname": "alice", "text": "hello", "n": 1}})


class Echo(BaseModel):
    nickname: str
    text: str
    n: int


handled = 0
"""Commands the server has handled, over every run."""


def make_app(rate_limit: RateLimit | None) -> WebSuckets:
    app = WebSuckets(rate_limit=rate_limit, send_timeout=None)
    group = CommandGroup("user")

    @group.command("echo")
    async def echo(socket: ServerConnection, model: Echo, ctx: Context) -> None:
        global handled
        handled += 1
        await ctx.reply("echo", model)

    app.include_command_group(group)
    return app


def flood_process(url: str, batch: int, reading: bool, seconds: float) -> None:
    async def timed() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await flood(url, batch, reading, stop)

    asyncio.run(timed())


async def flood(url: str, batch: int, reading: bool, stop: asyncio.Event) -> int:
    sent = 0
    async with connect(url, max_queue=None if reading else 1, compression=None) as ws:
        reader = asyncio.create_task(_drain(ws)) if reading else None
        try:
            while not stop.is_set():
                for _ in range(batch):
                    ws.protocol.send_text(FRAME.encode())
                ws.send_data()
                sent += batch
                await asyncio.sleep(0)  # let the loop write; the server decides how fast it reads
                with contextlib.suppress(Exception):
                    await ws.drain()
        except ConnectionClosed:
            pass
        finally:
            if reader is not None:
                reader.cancel()
    return sent


async def _drain(ws: object) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:  # type: ignore[attr-defined]
            pass


async def measure(url: str, stop: asyncio.Event) -> list[float]:
    latencies: list[float] = []
    async with connect(url, compression=None) as ws:
        while not stop.is_set():
            started = time.perf_counter()
            await ws.send(FRAME)
            await ws.recv()
            latencies.append((time.perf_counter() - started) * 1e3)
            await asyncio.sleep(0.005)
    return latencies


async def ticker(stop: asyncio.Event) -> float:
    """The most CPU time the loop spent elsewhere between two 1 ms ticks, in ms."""
    longest = 0.0
    while not stop.is_set():
        started = time.thread_time()
        await asyncio.sleep(0.001)
        longest = max(longest, time.thread_time() - started)
    return longest * 1e3


async def run(
    mode: str, rate_limit: RateLimit | None, seconds: float, batch: int
) -> tuple[float, float, int, float, float]:
    app = make_app(rate_limit)
    async with app, app.serve("127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        stop = asyncio.Event()
        flooder = multiprocessing.get_context("spawn").Process(
            target=flood_process, args=(url, batch, mode == "reading", seconds + 1.5)
        )
        flooder.start()
        await asyncio.sleep(1.0)  # the process starts and floods
        measurer = asyncio.create_task(measure(url, stop))
        stalls = asyncio.create_task(ticker(stop))
        before, cpu = handled, time.process_time()
        await asyncio.sleep(seconds)
        cost = (time.process_time() - cpu) / max(handled - before, 1) * 1e6
        stop.set()
        latencies = await asyncio.wait_for(measurer, 30)
        stall = await stalls
        await asyncio.to_thread(flooder.join, 30)
        if flooder.is_alive():
            flooder.kill()
        server.close()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return statistics.median(latencies), p99, len(latencies), cost, stall


async def main(seconds: float, batch: int, no_yield: bool, read_size: int | None) -> None:
    if no_yield:
        dispatcher_module.YIELD_EVERY = 10**12  # type: ignore[misc]
        dispatcher_module.TIME_SLICE = 1e12  # type: ignore[misc]
    if read_size is not None:
        connection_module.READ_SIZE = read_size or None
    reads = f"{connection_module.READ_SIZE} B" if connection_module.READ_SIZE else "whole reads"
    yields = "off" if no_yield else "on"
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(f"{loop} loop; fairness yields: {yields}; parsing {reads} at once; flood batches of {batch} frames", end="")
    print(f"; {seconds} s a run")
    print(
        "| flooding client | rate limit | other client p50 ms | p99 ms | samples | server CPU µs/command | stall ms |"
    )
    print(
        "|-----------------|------------|--------------------:|-------:|--------:|----------------------:|---------:|"
    )
    for mode in ("reading", "not-reading"):
        for label, limit in (("off", None), ("default", DEFAULT_RATE_LIMIT)):
            p50, p99, count, cost, stall = await run(mode, limit, seconds, batch)
            print(
                f"| {mode:15} | {label:10} | {p50:19.2f} | {p99:6.2f} | {count:7} | {cost:21.1f} | {stall:8.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--no-yield", action="store_true")
    parser.add_argument("--read-size", type=int, help="bytes parsed at once; 0 for a whole read (256 KiB at most)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the server's event loop")
    arguments = parser.parse_args()
    run_loop = asyncio.run
    if arguments.loop == "uvloop":
        import uvloop

        run_loop = uvloop.run
    run_loop(main(arguments.seconds, arguments.batch, arguments.no_yield, arguments.read_size))
