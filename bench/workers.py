"""``websuckets run --workers``: how connections spread over workers, and what workers and uvloop give.

    .venv/bin/python bench/workers.py           # 1000 connections x 5, 3 s runs x 3
    .venv/bin/python bench/workers.py --quick   # 200 connections x 2, 1 s runs x 1

Every server is ``websuckets run workers_app:app`` (bench/servers/workers_app.py: the benchmark's
``user echo`` command on a RedisBackend) with a redis-server of the bench's own on 127.0.0.1;
the load generator is bench/client.py (picows, one process). Nothing is pinned: two workers and
the client share the machine's cores. Three tables, on stdout and in bench/results/workers.md:

1. **spread**: idle connections opened 50 at a time (burst) or one at a time (trickle), counted
   per worker (its sockets in /proc/PID/fd), for each ``--balance``;
2. **under load**: the command workload on 2 workers for each ``--balance``: replies/s, latency,
   and how the connections were spread while it ran;
3. **replies/s**: 1 and 2 workers, asyncio and uvloop.

The runs of the last two tables are interleaved (every case once, then every case again), so
that other load on the machine spreads over the cases rather than falling on one.

"server CPU" is the workers' CPU time over the measured window (100% is one core), and
"replies/CPU-s" the replies per second of it: on a machine whose cores the client shares, the
figure that says what a loop costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import machine
from run import cpu_seconds, raise_file_limit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))
from redis_server import RedisServer  # noqa: E402  (the tests' redis-server helper, found through sys.path)

BALANCES = ("shared", "reuse-port")


class Server:
    """``websuckets run workers_app:app`` on a free port; its worker processes' pids."""

    def __init__(self, workers: int, loop: str, balance: str, redis_url: str, logs: Path) -> None:
        self.argv = [sys.executable, "-m", "websuckets", "run", "workers_app:app", "--host", "127.0.0.1", "--port", "0"]
        self.argv += ["--workers", str(workers), "--loop", loop, "--balance", balance, "--log-level", "warning"]
        self.workers = workers
        self.env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
        self.log = logs / f"server-{workers}-{loop}-{balance}.log"
        self.url = ""
        self.pids: list[int] = []

    async def __aenter__(self) -> Server:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, cwd=BENCH / "servers", env=self.env, stdout=asyncio.subprocess.PIPE, stderr=log
            )
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), 60)).decode()
        found = re.search(r"ws://\S+", line)
        if not found:
            await self.__aexit__()
            raise RuntimeError(f"the server did not start: {line!r}\n{self.log.read_text()[-2000:]}")
        self.url = found.group() + "/"
        self.pids = self.worker_pids()
        return self

    def worker_pids(self) -> list[int]:
        pid = self.process.pid
        if self.workers == 1:
            return [pid]
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sorted(int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes())

    def sockets(self) -> list[int]:
        """Each worker's open sockets (its listening socket, Redis, clients)."""
        return [sum(os.readlink(fd).startswith("socket:") for fd in Path(f"/proc/{p}/fd").iterdir()) for p in self.pids]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    async def __aexit__(self, *exc_info: object) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 60)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def client(server: Server, workload: str, connections: int, options: argparse.Namespace, **extra: Any) -> Any:
    """Run bench/client.py against ``server``; the result, the server's CPU and its sockets while measuring."""
    argv = [sys.executable, str(BENCH / "client.py"), f"--url={server.url}", f"--workload={workload}"]
    argv += [f"--connections={connections}", f"--warmup={options.warmup}", f"--duration={options.duration}"]
    argv += [f"--{key.replace('_', '-')}={value}" for key, value in extra.items()]
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert process.stdin is not None
    result: dict[str, Any] = {}
    try:
        async with asyncio.timeout(120 + options.warmup + options.duration + connections / 10):
            while line := await process.stdout.readline():
                message = json.loads(line)
                phase = message.get("phase")
                if phase == "measuring":
                    result["sockets"] = server.sockets()
                    cpu = server.cpu()
                elif phase == "done":
                    result["server_cpu"] = server.cpu() - cpu
                elif phase == "connected":
                    await asyncio.sleep(0.2)
                    result["sockets"] = server.sockets()
                    process.stdin.write(b"close\n")
                    await process.stdin.drain()
                elif "result" in message:
                    result.update(message["result"])
            stderr = await process.stderr.read() if process.stderr else b""
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"client failed: {stderr.decode(errors='replace')[-2000:]}")
    return result


def per_worker(before: list[int], after: list[int]) -> list[int]:
    return [b - a for a, b in zip(before, after, strict=True)]


def imbalance(counts: list[int]) -> float:
    """The busiest worker's share over a fair share: 1.00 is even, N is everything on one worker."""
    return max(counts) / (sum(counts) / len(counts)) if sum(counts) else 0.0


async def spread(options: argparse.Namespace, redis_url: str, logs: Path) -> list[str]:
    rows = ["| balance | workers | arrival | connections per worker, each repetition | busiest / fair (median) |"]
    rows.append("|---|---:|---|---|---:|")
    for workers in options.spread_workers:
        for balance in BALANCES:
            async with Server(workers, options.loop, balance, redis_url, logs) as server:
                for arrival, concurrency in (("burst", 50), ("trickle", 1)):
                    runs = []
                    for _ in range(options.repeat_spread):
                        before = server.sockets()
                        result = await client(
                            server, "idle", options.connections, options, connect_concurrency=concurrency
                        )
                        runs.append(per_worker(before, result["sockets"]))
                        await asyncio.sleep(0.5)  # the closed connections leave
                    shown = " ".join("/".join(str(n) for n in run) for run in runs)
                    ratio = statistics.median(imbalance(run) for run in runs)
                    rows.append(f"| {balance} | {workers} | {arrival} | {shown} | {ratio:.2f} |")
                    print(rows[-1], file=sys.stderr)
    return rows


async def throughput(
    options: argparse.Namespace, redis_url: str, logs: Path, cases: list[tuple[int, str, str]], connections: list[int]
) -> list[str]:
    """The command workload against every case, interleaved: each repetition runs every case in turn."""
    rows = ["| workers | loop | balance | C | replies/s | p50 ms | p99 ms | max ms | server CPU | replies/CPU-s "]
    rows[0] += "| per worker |"
    rows.append("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    runs: dict[tuple[tuple[int, str, str], int], list[dict[str, Any]]] = {}
    async with contextlib.AsyncExitStack() as stack:
        servers = {case: await stack.enter_async_context(Server(*case, redis_url, logs)) for case in cases}
        for _ in range(options.repeat):
            for count in connections:
                for case, server in servers.items():
                    before = server.sockets()
                    result = await client(server, "command", count, options)
                    result["spread"] = per_worker(before, result["sockets"])
                    runs.setdefault((case, count), []).append(result)
                    await asyncio.sleep(0.5)
    for count in connections:
        for workers, loop, balance in cases:
            found = runs[(workers, loop, balance), count]
            median = sorted(found, key=lambda r: r["rate"])[len(found) // 2]
            cpu = median["server_cpu"] / median["elapsed"]
            spread = " ".join("/".join(str(n) for n in r["spread"]) for r in found)
            shown = balance if workers > 1 else "-"
            rows.append(
                f"| {workers} | {loop} | {shown} | {count} | {median['rate']:,.0f} | {median['p50_ms']:.2f} "
                f"| {median['p99_ms']:.2f} | {median['max_ms']:.1f} | {cpu:.0%} "
                f"| {median['count'] / median['server_cpu']:,.0f} | {spread} |"
            )
            print(rows[-1], file=sys.stderr)
    return rows


async def main(options: argparse.Namespace) -> str:
    logs = Path(tempfile.mkdtemp(prefix="websuckets-bench-workers-"))
    redis = RedisServer()
    redis.start()
    started = time.monotonic()
    try:
        sections = ["### Connection spread over workers (idle connections)", ""]
        sections += await spread(options, redis.url, logs)
        sections += ["", f"### Under load: 2 workers, command workload ({options.loop})", ""]
        load_cases = [(2, options.loop, balance) for balance in BALANCES]
        sections += await throughput(options, redis.url, logs, load_cases, [options.load_connections])
        sections += ["", "### Replies/s: 1 and 2 workers, asyncio and uvloop", ""]
        cases = [(workers, loop, "reuse-port") for workers in (1, 2) for loop in ("asyncio", "uvloop")]
        sections += await throughput(options, redis.url, logs, cases, options.concurrency)
    finally:
        redis.stop()
    header = [
        "## websuckets run --workers",
        "",
        f"- Command: `{' '.join(['python bench/workers.py', *sys.argv[1:]])}` ({time.monotonic() - started:.0f} s)",
        f"- Machine: {machine()}",
        "- Nothing pinned: the workers, the client (bench/client.py, picows, one process) and redis-server "
        "share the cores; 127.0.0.1 only",
        f"- Method: warm-up {options.warmup:g} s, {options.duration:g} s measured, median of {options.repeat}; "
        f"spread: {options.connections} connections, {options.repeat_spread} repetitions",
        "",
    ]
    return "\n".join(header + sections) + "\n"


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 connections x 2, 0.5 s warm-up, 1 s runs x 1")
    parser.add_argument("--connections", type=int, help="idle connections per spread measurement (default 1000)")
    parser.add_argument("--spread-workers", default="2,4", help="worker counts of the spread table")
    parser.add_argument("--load-connections", type=int, default=256, help="connections of the under-load table")
    parser.add_argument("--concurrency", default="64,256", help="connection counts of the replies/s table")
    parser.add_argument("--loop", default="uvloop", choices=["asyncio", "uvloop"], help="loop of the first two tables")
    parser.add_argument("--warmup", type=float)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "workers.md")
    options = parser.parse_args()
    quick = options.quick
    options.connections = options.connections or (200 if quick else 1000)
    options.repeat_spread = 2 if quick else 5
    options.warmup = options.warmup if options.warmup is not None else (0.5 if quick else 1.0)
    options.duration = options.duration if options.duration is not None else (1.0 if quick else 3.0)
    options.repeat = options.repeat or (1 if quick else 3)
    options.spread_workers = [int(n) for n in options.spread_workers.split(",")]
    options.concurrency = [int(n) for n in options.concurrency.split(",")]
    return options


if __name__ == "__main__":
    arguments = parse_options()
    raise_file_limit()
    text = asyncio.run(main(arguments))
    print(text)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(text)
    with contextlib.suppress(ValueError):
        print(f"table: {arguments.out.relative_to(ROOT)}", file=sys.stderr)
