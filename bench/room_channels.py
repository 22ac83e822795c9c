"""Broadcast cost as the number of processes grows: per-room channels against one shared channel.

    .venv/bin/python bench/room_channels.py            # 2, 4 and 8 processes, 3 repetitions
    .venv/bin/python bench/room_channels.py --quick    # 2 and 4 processes, smaller, once

P websuckets processes (`servers/websuckets_room_channels.py`) share one redis-server of
their own. Process 1 has the one member of room ``target``; every other process has a member of
a room of its own (members, but none in ``target``). Process 0 broadcasts N messages to
``target``. Measured, with room broadcasts on the room's channel (websuckets now) and on the
namespace's one channel (``RedisBackend(room_channels=False)``, websuckets 0.1: the reference,
in the same run, alternated):

- **delivered/s**: N over the time from the burst's start to the member's last message;
- **CPU µs per broadcast**: of every websuckets process together (the sender's included);
- **bystander CPU µs**: of each process without a member in ``target``, per broadcast: what a
  broadcast costs the processes it is not for.
- **Redis CPU µs per broadcast**: of the redis-server, and the broadcasts one Redis core carries
  at that cost (its inverse): the capacity of one Redis for room broadcasts.

The table goes to stdout and ``bench/results/room_channels.md`` (``--out DIR`` elsewhere).
Everything runs on 127.0.0.1 with every wait bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import machine
from run import ROOT, SERVERS_DIR, BenchError, cpu_seconds, free_port, load_redis_server
from websockets.asyncio.client import ClientConnection, connect

MODES = {"per-room channels": [], "one shared channel": ["--shared-channel"]}


class Server:
    """One websuckets process of the run."""

    def __init__(self, index: int, redis_url: str, namespace: str, extra: list[str], logs: Path) -> None:
        self.port = free_port()
        self.argv = [sys.executable, str(SERVERS_DIR / "websuckets_room_channels.py"), "--port", str(self.port)]
        self.argv += ["--redis-url", redis_url, "--namespace", namespace, *extra]
        self.log = logs / f"server-{index}.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, stdout=log, stderr=log, cwd=ROOT, start_new_session=True
            )

    async def connect(self) -> ClientConnection:
        deadline = time.monotonic() + 30
        while True:
            assert self.process is not None
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise BenchError(f"a server did not start: {self.log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError):
                return await connect(f"ws://127.0.0.1:{self.port}/", open_timeout=5, max_size=None)
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


async def ask(connection: ClientConnection, event: str, payload: dict[str, Any], within: float = 60) -> None:
    await connection.send(json.dumps({"event": f"bench {event}", "payload": payload}))
    async with asyncio.timeout(within):
        while json.loads(await connection.recv())["event"] != event:
            pass


async def receive(member: ClientConnection, count: int) -> float:
    """Read ``count`` broadcasts; the monotonic time of the last."""
    async with asyncio.timeout(120):
        for _ in range(count):
            await member.recv()
    return time.monotonic()


async def one_run(processes: int, mode: str, count: int, logs: Path) -> dict[str, Any]:
    redis = load_redis_server()()
    redis.start()
    servers = [Server(i, redis.url, "bench-rooms", MODES[mode], logs) for i in range(processes)]
    try:
        await asyncio.gather(*(server.start() for server in servers))
        connections = [await server.connect() for server in servers]
        sender, member = connections[0], connections[1]
        await ask(member, "join", {"room": "target"})
        for index, bystander in enumerate(connections[2:], start=2):
            await ask(bystander, "join", {"room": f"room-{index}"})
        await ask(connections[0], "join", {"room": "room-0"})
        await asyncio.sleep(0.5)  # every process settled
        before = [cpu_seconds(server.pid) for server in servers]
        redis_before = cpu_ns(redis.process.pid)
        start = time.monotonic()
        last = asyncio.create_task(receive(member, count))
        await ask(sender, "blast", {"room": "target", "count": count}, within=120)
        end = await last
        after = [cpu_seconds(server.pid) for server in servers]
        redis_spent = (cpu_ns(redis.process.pid) - redis_before) / 1e9
        spent = [b - a for a, b in zip(before, after, strict=True)]
        bystanders = spent[2:]
        return {
            "processes": processes,
            "mode": mode,
            "count": count,
            "delivered_per_s": count / (end - start),
            "cpu_us_per_broadcast": sum(spent) / count * 1e6,
            "redis_cpu_us": redis_spent / count * 1e6,
            "bystander_cpu_us": statistics.mean(bystanders) / count * 1e6 if bystanders else None,
        }
    finally:
        await asyncio.gather(*(server.stop() for server in servers))
        redis.stop()


def cpu_ns(pid: int) -> int:
    """A process's time on a CPU in ns, from /proc/PID/schedstat: finer than the 10 ms ticks of /proc/PID/stat."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def median_of(records: list[dict[str, Any]], key: str) -> float | None:
    values = [record[key] for record in records if record[key] is not None]
    return statistics.median(values) if values else None


def table(records: list[dict[str, Any]], levels: list[int]) -> list[str]:
    lines = [
        "| processes | room broadcasts on | delivered/s | CPU µs per broadcast (all processes) "
        "| CPU µs per broadcast, each bystander | bystander cost vs shared | Redis CPU µs per broadcast "
        "| broadcasts per Redis core-s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for processes in levels:
        by_mode = {mode: [r for r in records if r["processes"] == processes and r["mode"] == mode] for mode in MODES}
        shared = median_of(by_mode["one shared channel"], "bystander_cpu_us")
        for mode, rows in by_mode.items():
            bystander = median_of(rows, "bystander_cpu_us")
            vs = f"{bystander / shared:.2f}x" if bystander is not None and shared else "-"
            bystander_text = "-" if bystander is None else f"{bystander:.1f}"
            redis_us = median_of(rows, "redis_cpu_us") or math.inf
            lines.append(
                f"| {processes} | {mode} | {median_of(rows, 'delivered_per_s'):,.0f} "
                f"| {median_of(rows, 'cpu_us_per_broadcast'):.1f} | {bystander_text} | {vs} "
                f"| {redis_us:.1f} | {1e6 / redis_us:,.0f} |"
            )
    return lines


async def measure(options: argparse.Namespace, logs: Path) -> list[dict[str, Any]]:
    records = []
    for repetition in range(options.repeat):
        for processes in options.processes:
            modes = list(MODES) if repetition % 2 == 0 else list(reversed(MODES))  # alternated
            for mode in modes:
                record = await one_run(processes, mode, options.count, logs)
                print(
                    f"  P={processes} {mode}: {record['delivered_per_s']:,.0f}/s, "
                    f"{record['cpu_us_per_broadcast']:.1f} µs CPU per broadcast",
                    file=sys.stderr,
                )
                records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 and 4 processes, 5,000 broadcasts, once")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    options = parser.parse_args(argv)
    options.processes = [2, 4] if options.quick else [2, 4, 8]
    options.count = 5_000 if options.quick else 20_000
    options.repeat = 1 if options.quick else 3
    with tempfile.TemporaryDirectory(prefix="websuckets-room-channels-") as logs:
        records = asyncio.run(measure(options, Path(logs)))
    lines = [
        "# Room broadcasts across processes: per-room channels against one shared channel",
        "",
        f"{machine()}.",
        "",
        f"{options.count:,} broadcasts to a room with one member, on process 1 of P; "
        f"medians of {options.repeat} alternated runs.",
        "",
        *table(records, options.processes),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "room_channels.md").write_text(text)
    (options.out / "room_channels.json").write_text(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
