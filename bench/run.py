"""The benchmark suite of websuckets against hand-rolled code and peers: one command, one table.

    .venv/bin/python bench/run.py            # the full run: C = 1, 16, 64, 256, 3 repetitions
    .venv/bin/python bench/run.py --quick    # C = 1, 16, 64, 1 s runs, 1 repetition

Every server in ``bench/servers/`` runs in its own process, pinned to CPU 0, and the load
generator (``bench/client.py``, picows) in another, pinned to CPU 1, when ``taskset``
exists. Everything listens on 127.0.0.1 only. The table goes to stdout and
``bench/results/latest.md`` (figures also as ``latest.json``), the plots to
``docs/img/performance-*.png``; ``--out DIR`` puts them all in ``DIR`` instead.
``--from bench/results/latest.json`` renders the table and the plots again from a run's
figures, without running anything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report import Summary, machine, render, write_plots

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVERS_DIR = BENCH / "servers"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
TUNABLES = "glibc.malloc.mmap_threshold=1048576"


@dataclass(frozen=True)
class Server:
    label: str
    argv: tuple[str, ...]
    protocol: str = "ws"
    raw: bool = False
    redis: bool = False
    """Whether the server needs a Redis: the runner starts one redis-server and passes ``--redis-url``."""


SERVERS = {
    "raw": Server("raw websockets echo", ("raw_echo.py",), raw=True),
    "handrolled": Server("hand-rolled", ("handrolled.py",)),
    "handrolled_dishka": Server("hand-rolled + dishka", ("handrolled_dishka.py",)),
    "fastapi": Server("FastAPI (uvicorn)", ("fastapi_app.py",)),
    "socketio": Server("python-socketio (uvicorn)", ("socketio_app.py",), protocol="socketio"),
    "websuckets": Server("websuckets", ("websuckets_app.py", "--variant", "plain")),
    "websuckets_di": Server("websuckets DI", ("websuckets_app.py", "--variant", "di")),
    "websuckets_container": Server("websuckets + container", ("websuckets_app.py", "--variant", "container")),
    "websuckets_limited": Server(
        "websuckets + rate limit (never reached)", ("websuckets_app.py", "--variant", "limited")
    ),
    "websuckets_metrics": Server("websuckets + metrics", ("websuckets_app.py", "--variant", "metrics")),
    "websuckets_tracing": Server("websuckets + tracing (no exporter)", ("websuckets_app.py", "--variant", "tracing")),
    "websuckets_rooms": Server("websuckets rooms", ("websuckets_rooms.py",)),
    "websuckets_rooms_redis": Server(
        "websuckets rooms, Redis", ("websuckets_rooms.py", "--backend", "redis"), redis=True
    ),
    "websuckets_rooms_history": Server("websuckets rooms + history", ("websuckets_rooms.py", "--history", "2000")),
    "websuckets_rooms_redis_history": Server(
        "websuckets rooms, Redis + history",
        ("websuckets_rooms.py", "--backend", "redis", "--history", "2000"),
        redis=True,
    ),
    "websuckets_history": Server("websuckets history rooms", ("websuckets_history.py",)),
    "websuckets_history_redis": Server(
        "websuckets history rooms, Redis", ("websuckets_history.py", "--backend", "redis"), redis=True
    ),
}
FANOUT_ONLY = (
    "websuckets_rooms",
    "websuckets_rooms_redis",
    "websuckets_rooms_history",
    "websuckets_rooms_redis_history",
)
"""Servers that only broadcast ``chat say`` (no ``user echo``)."""
RESUME_ONLY = ("websuckets_history", "websuckets_history_redis")
"""Servers of ``bench/history.py``'s resume latency, which no workload here runs."""
ON_REQUEST = ("websuckets_rooms_history", "websuckets_rooms_redis_history", *RESUME_ONLY)
"""Servers that run only when ``--servers`` names them (``bench/history.py`` does)."""
WORKLOADS = {
    "command": [name for name in SERVERS if name not in FANOUT_ONLY + RESUME_ONLY],
    "errors": ["handrolled", "handrolled_dishka", "websuckets", "websuckets_di"],
    "fanout": ["handrolled", "fastapi", "socketio", "websuckets", *FANOUT_ONLY],
    "idle": ["raw", "handrolled", "fastapi", "socketio", "websuckets", "websuckets_di"],
}


class BenchError(RuntimeError):
    pass


def redis_servers() -> Any:
    """The tests' tests/redis_server.py: redis-servers (and sentinels) of our own on free ports of 127.0.0.1."""
    spec = importlib.util.spec_from_file_location("bench_redis_server", ROOT / "tests" / "redis_server.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_redis_server() -> Any:
    """The tests' ``RedisServer``: a redis-server of our own on a free port of 127.0.0.1."""
    return redis_servers().RedisServer


def pin(cpu: int, enabled: bool) -> list[str]:
    return ["taskset", "-c", str(cpu)] if enabled else []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15


def system_busy() -> float:
    """CPU seconds the whole machine has spent busy (not idle, not waiting for I/O), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    """Resident memory of a process, VmRSS from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for process {pid}")


class Bench:
    """Starts servers and clients, collects one record per measurement, stops everything."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.pinned = not options.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
        self.logs = Path(tempfile.mkdtemp(prefix="websuckets-bench-"))
        self.running: dict[str, tuple[asyncio.subprocess.Process, int]] = {}
        self.records: list[dict[str, Any]] = []
        self.redis: Any = None  # one redis-server for every server that needs one, started on first need

    # servers

    def redis_url(self) -> str:
        if self.redis is None:
            try:
                self.redis = load_redis_server()()
                self.redis.start()
            except RuntimeError as exc:  # not installed, or it did not start: say so, with its log
                raise BenchError(str(exc)) from exc
        return str(self.redis.url)

    async def start(self, name: str) -> tuple[asyncio.subprocess.Process, int]:
        server, port = SERVERS[name], free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.options.trap == "tunables":
            env["GLIBC_TUNABLES"] = TUNABLES
        argv = [*pin(0, self.pinned), sys.executable, str(SERVERS_DIR / server.argv[0]), *server.argv[1:]]
        if server.redis:
            argv += ["--redis-url", self.redis_url()]
        log = (self.logs / f"{name}.log").open("ab")
        process = await asyncio.create_subprocess_exec(
            *argv, "--port", str(port), stdout=log, stderr=log, env=env, cwd=ROOT, start_new_session=True
        )
        self.running[name] = (process, port)
        await self.wait_listening(name, process, port)
        if self.options.trap == "connection":
            await self.client(name, "prime", 1)
        return process, port

    async def wait_listening(self, name: str, process: asyncio.subprocess.Process, port: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise BenchError(f"{name} exited with {process.returncode}: {self.log_tail(name)}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.1)
        raise BenchError(f"{name} did not listen on port {port} within 30 s: {self.log_tail(name)}")

    async def stop(self, name: str) -> None:
        process, _ = self.running.pop(name)
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()

    async def stop_all(self) -> None:
        for name in list(self.running):
            await self.stop(name)
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def log_tail(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]

    # clients

    async def client(self, name: str, workload: str, connections: int, idle_hook: Any = None) -> dict[str, Any]:
        """Run one client process; return its result, with the server's CPU time over the measured window."""
        server = SERVERS[name]
        process, port = self.running[name]
        argv = [
            *pin(1, self.pinned),
            sys.executable,
            str(BENCH / "client.py"),
            f"--url=ws://127.0.0.1:{port}/",
            f"--workload={workload}",
            f"--protocol={server.protocol}",
            f"--connections={connections}",
            f"--warmup={self.options.warmup}",
            f"--duration={self.options.duration}",
            *(["--raw"] if server.raw else []),
        ]
        client = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        assert client.stdout is not None
        assert client.stdin is not None
        result: dict[str, Any] = {}
        server_cpu = redis_cpu = busy = 0.0
        redis_pid = self.redis.process.pid if server.redis and self.redis and self.redis.process else None
        try:
            async with asyncio.timeout(self.options.warmup + self.options.duration + 120 + connections / 10):
                while line := await client.stdout.readline():
                    message = json.loads(line)
                    phase = message.get("phase")
                    if phase == "measuring":
                        server_cpu, busy = cpu_seconds(process.pid), system_busy()
                        redis_cpu = cpu_seconds(redis_pid) if redis_pid else 0.0
                    elif phase == "done":
                        server_cpu, busy = cpu_seconds(process.pid) - server_cpu, system_busy() - busy
                        redis_cpu = cpu_seconds(redis_pid) - redis_cpu if redis_pid else 0.0
                    elif phase == "connected":
                        result.update(await idle_hook(process.pid))
                        client.stdin.write(b"close\n")
                        await client.stdin.drain()
                    elif "result" in message:
                        result.update(message["result"])
                stderr = await client.stderr.read() if client.stderr else b""
                await client.wait()
        finally:
            if client.returncode is None:
                client.kill()
                await client.wait()
        if client.returncode != 0 or not result:
            raise BenchError(f"client {workload} against {name} failed: {stderr.decode(errors='replace')[-2000:]}")
        result["server_cpu"] = server_cpu
        if redis_pid:
            result["redis_cpu"] = redis_cpu
        if "client_cpu" in result:  # the machine's busy time that was none of server, client and Redis
            others = busy - server_cpu - redis_cpu - result["client_cpu"]
            result["others_cpu"] = max(0.0, others) / (result["elapsed"] * (os.cpu_count() or 1))
        return result

    # workloads

    async def throughput(self, workload: str, names: list[str]) -> None:
        """Closed-loop runs: for each repetition, each concurrency, each server in turn.

        Every other repetition takes the servers in reverse order, so that none always runs
        right after the same one.
        """
        await asyncio.gather(*(self.start(name) for name in names if name not in self.running))
        for repetition in range(self.options.repeat):
            for connections in self.options.concurrency:
                for name in names if repetition % 2 == 0 else names[::-1]:
                    result = await self.client(name, workload, connections)
                    self.record(workload, name, connections, repetition, result)

    async def idle(self, names: list[str]) -> None:
        """Each repetition on a fresh server: RSS before and after opening the idle connections."""
        count = self.options.idle_connections
        for repetition in range(self.options.repeat):
            for name in names:
                if name in self.running:
                    await self.stop(name)
                await self.start(name)
                await asyncio.sleep(0.3)
                before = rss_kib(self.running[name][0].pid)

                async def measure_rss(pid: int, before: int = before) -> dict[str, Any]:
                    await asyncio.sleep(0.5)
                    after = rss_kib(pid)
                    return {"rss_before_kib": before, "rss_after_kib": after, "kib": (after - before) / count}

                result = await self.client(name, "idle", count, idle_hook=measure_rss)
                await self.stop(name)
                self.record("idle", name, count, repetition, result)

    def record(self, workload: str, name: str, connections: int, repetition: int, result: dict[str, Any]) -> None:
        record = {"workload": workload, "server": name, "connections": connections, "repetition": repetition}
        self.records.append(record | result)
        shown = f"{result['kib']:.1f} KiB/conn" if workload == "idle" else f"{result['rate']:,.0f}/s"
        print(f"  {workload:8} {name:22} C={connections:<5} rep {repetition + 1}: {shown}", file=sys.stderr)

    async def run(self) -> None:
        try:
            for workload in self.options.workloads:
                names = [name for name in self.options.servers if name in WORKLOADS[workload]]
                print(f"{workload}: {', '.join(names)}", file=sys.stderr)
                if workload == "idle":
                    await self.idle(names)
                else:
                    await self.throughput(workload, names)
        finally:
            await self.stop_all()


async def fanout_records(
    servers: Sequence[str], concurrency: Sequence[int], warmup: float, duration: float, repeat: int
) -> list[dict[str, Any]]:
    """The fan-out workload on ``servers``, repetitions interleaved: one record a run (``rate``, ``server_cpu``...)."""
    argv = ["--workloads=fanout", f"--servers={','.join(servers)}", "--no-plot"]
    argv += [f"--concurrency={','.join(map(str, concurrency))}", f"--warmup={warmup}"]
    argv += [f"--duration={duration}", f"--repeat={repeat}"]
    bench = Bench(parse_options(argv))
    await bench.run()
    return bench.records


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="C = 1, 16, 64; 0.5 s warm-up, 1 s runs; 1 repetition")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of {','.join(WORKLOADS)}")
    default_servers = ",".join(name for name in SERVERS if name not in ON_REQUEST)
    parser.add_argument("--servers", default=default_servers, help=f"comma-separated, of {','.join(SERVERS)}")
    parser.add_argument("--concurrency", help="comma-separated connection counts (default 1,16,64,256)")
    parser.add_argument("--warmup", type=float, help="seconds before measuring (default 1)")
    parser.add_argument("--duration", type=float, help="seconds measured (default 3)")
    parser.add_argument("--repeat", type=int, help="repetitions, the median is shown (default 3)")
    parser.add_argument("--idle-connections", type=int, default=2000)
    parser.add_argument(
        "--trap",
        choices=["connection", "tunables", "none"],
        default="connection",
        help="how servers avoid glibc's mmap trap: a throw-away connection (default), GLIBC_TUNABLES, or not at all",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client to separate CPUs")
    parser.add_argument("--out", type=Path, help="directory for latest.md, latest.json and the plots")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="JSON",
        help="render the table and the plots from a run's latest.json instead of running anything",
    )
    options = parser.parse_args(argv)
    quick = options.quick
    options.concurrency = [int(c) for c in (options.concurrency or ("1,16,64" if quick else "1,16,64,256")).split(",")]
    options.warmup = options.warmup if options.warmup is not None else (0.5 if quick else 1.0)
    options.duration = options.duration if options.duration is not None else (1.0 if quick else 3.0)
    options.repeat = options.repeat if options.repeat is not None else (1 if quick else 3)
    options.workloads = [w for w in options.workloads.split(",") if w]
    options.servers = [s for s in options.servers.split(",") if s]
    for value, known in ((options.workloads, WORKLOADS), (options.servers, SERVERS)):
        unknown = sorted(set(value) - set(known))
        if unknown:
            parser.error(f"unknown: {', '.join(unknown)}")
    return options


def raise_file_limit() -> None:
    """Idle runs open thousands of sockets: raise the soft limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def trap_note(trap: str) -> str:
    return {
        "connection": "glibc mmap trap neutralised by a throw-away connection (64 KiB sent, TCP dropped) "
        "on every server before its first warm-up",
        "tunables": f"glibc mmap trap neutralised with GLIBC_TUNABLES={TUNABLES} on every server",
        "none": "glibc mmap trap NOT neutralised: freshly started servers may run at half speed",
    }[trap]


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    if options.source is not None:
        run = json.loads(options.source.read_text())
        return report(options, run["header"], run["records"])
    raise_file_limit()
    bench = Bench(options)
    started = time.monotonic()
    try:
        asyncio.run(bench.run())
    except BenchError as error:
        print(f"benchmark failed: {error}\nserver logs: {bench.logs}", file=sys.stderr)
        return 1
    header = {
        "command": shlex.join(
            ["python", os.path.relpath(sys.argv[0], ROOT), *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": machine(),
        "pinning": "server on CPU 0, client on CPU 1 (taskset)" if bench.pinned else "none",
        "trap": trap_note(options.trap),
        "method": f"warm-up {options.warmup:g} s, {options.duration:g} s measured, "
        f"median of {options.repeat} repetition(s); idle: {options.idle_connections} connections",
        "elapsed": f"{time.monotonic() - started:.0f} s",
    }
    out = options.out
    results = out if out else BENCH / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "latest.json").write_text(json.dumps({"header": header, "records": bench.records}, indent=1))
    return report(options, header, bench.records)


def report(options: argparse.Namespace, header: dict[str, str], records: list[dict[str, Any]]) -> int:
    """Print the table and write it to latest.md, and draw the plots."""
    summary = Summary(records, {name: server.label for name, server in SERVERS.items()})
    text = render(header, summary)
    print(text)
    out = options.out
    markdown = (out / "latest.md") if out else BENCH / "results" / "latest.md"
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(text)
    if not options.no_plot:
        for plot in write_plots(summary, out or ROOT / "docs" / "img"):
            print(f"plot: {plot}", file=sys.stderr)
    print(f"table: {markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
