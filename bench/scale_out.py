"""The scale-out figures of websuckets: several processes on one Redis, each against a reference.

    .venv/bin/python bench/scale_out.py            # every part, 3 repetitions (about 4 minutes)
    .venv/bin/python bench/scale_out.py --quick    # every part, smaller and shorter (under a minute)

1. **Delivery**: direct messages (the documentation's ``send message``,
   ``Session.online[to].socket.send(...)``) from senders on process A to receivers on
   process B, both on `RedisBackend` and one Redis, against sender and receiver on A alone:
   latency p50/p99/p99.9 at fixed rates (open loop, `scale_client.py`), and the most
   messages per second (closed loop).
2. **Room fan-out**: `bench/run.py`'s fan-out workload, with ``Session.broadcast(...,
   room=...)`` on `MemoryBackend` and on `RedisBackend` (one process), against the
   hand-rolled server and FastAPI in the same run.
3. **Mirror memory**: what a process holds for each client of another process, announced
   the way another process announces it (the backend's own Lua script), against what a
   client connected to that process costs.
4. **Redis restart**: two processes with clients; Redis killed (SIGKILL) and started again,
   empty, on its port; the time until both mirrors are whole again and a send crosses both
   ways, against the same when Redis only drops the connections (``CLIENT KILL``).
5. **Mirror freshness**: from a client entering ``Session.online`` on B to it entering A's,
   against one bare Redis PUBLISH heard by a subscriber.

The table goes to stdout and ``bench/results/scale_out.md`` (every figure also to
``scale_out.json``); ``--out DIR`` writes both to ``DIR``. Everything runs on 127.0.0.1, in
processes of its own (one redis-server per part), with every wait bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shlex
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from report import machine
from run import (
    BENCH,
    ROOT,
    SERVERS,
    SERVERS_DIR,
    BenchError,
    cpu_seconds,
    fanout_records,
    free_port,
    load_redis_server,
    rss_kib,
    system_busy,
)
from websockets.asyncio.client import ClientConnection, connect

from websuckets.backends.redis.codec import Upsert
from websuckets.backends.redis.keys import UPSERT, Keys

FANOUT_SERVERS = ("handrolled", "fastapi", "websuckets", "websuckets_rooms", "websuckets_rooms_redis")
PEERS = ("handrolled", "fastapi")
SHAPES = {
    "connected": lambda i: {"u": None, "a": {}, "r": []},
    "signed in, 1 attribute, 1 room": lambda i: {"u": f"user-{i}", "a": {"login": f"user-{i}"}, "r": ["lobby"]},
}
LATENCY_TARGET_MS = 2.0
MODERATE_RATE = 1000
"""The target holds at "moderate load": up to this rate; higher rates are shown, not judged."""
FANOUT_TARGET = 1.5
CLOSED_PAIRS = 64
"""K: the sender-receiver pairs of the closed loop."""
K1_P99_TARGET_MS = 0.5
"""Issue "Performance round 2": one pair, one message in flight, cross-process."""


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """``min-max`` of the repetitions, to show how noisy they were."""
    return f"{min(values):.2f}-{max(values):.2f}" if values else "n/a"


# processes


class App:
    """One ``websuckets_send.py`` process, and a connection of its own to ask it for figures."""

    def __init__(
        self,
        logs: Path,
        name: str,
        redis_url: str,
        namespace: str,
        *extra: str,
        script: str = "websuckets_send.py",
        control: bool = True,
    ) -> None:
        self.name = name
        self.has_control = control
        """Whether it answers ``bench`` commands on ``/`` (python-socketio's server does not: only TCP is awaited)."""
        self.port = free_port()
        self.argv = [sys.executable, str(SERVERS_DIR / script), "--port", str(self.port)]
        self.argv += ["--redis-url", redis_url, "--namespace", namespace, *extra]
        self.log = logs / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.control: ClientConnection | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> App:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, stdout=log, stderr=log, cwd=ROOT, start_new_session=True
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise BenchError(f"{self.name} did not start: {self.log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError):
                if not self.has_control:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    writer.close()
                    return self
                self.control = await connect(self.url, open_timeout=5, max_size=None)
                return self
            await asyncio.sleep(0.1)

    async def ask(self, event: str) -> Any:
        """Send ``bench <event>`` on the control connection; the payload of the answer."""
        assert self.control is not None
        await self.control.send(json.dumps({"event": f"bench {event}"}))
        async with asyncio.timeout(30):
            answer = json.loads(await self.control.recv())
        if answer["event"] != event:
            raise BenchError(f"{self.name} answered {answer!r} to bench {event}")
        return answer["payload"]

    async def stop(self) -> None:
        if self.control is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.control.close(), 2)
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()


async def run_json(argv: list[str], within: float, stdin_hook: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Run a helper process and return its ``{"result": ...}``; ``stdin_hook`` runs when it says it is connected."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert process.stdin is not None
    result: dict[str, Any] = {}
    try:
        async with asyncio.timeout(within):
            while line := await process.stdout.readline():
                message = json.loads(line)
                if message.get("phase") == "connected" and stdin_hook is not None:
                    result.update(await stdin_hook())
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
    if process.returncode != 0 or not result:
        raise BenchError(f"{shlex.join(argv[1:3])} failed: {stderr.decode(errors='replace')[-2000:]}")
    return result


class OwnRedis:
    """A redis-server of this script's own (tests/redis_server.py), with a client for it."""

    def __init__(self) -> None:
        self.server = load_redis_server()()
        self.server.start()
        self.url: str = self.server.url

    def client(self) -> Redis:
        return Redis.from_url(self.url, decode_responses=True)

    def stop(self) -> None:
        self.server.stop()


# 1 and 5: delivery and freshness, on one pair of processes


async def delivery(options: argparse.Namespace, logs: Path) -> dict[str, Any]:
    redis = OwnRedis()
    a = App(logs, "A", redis.url, "bench-delivery", "--stamp")
    b = App(logs, "B", redis.url, "bench-delivery", "--stamp")
    relay_a = App(logs, "relay-A", redis.url, "relay", script="handrolled_relay.py")
    relay_b = App(logs, "relay-B", redis.url, "relay", script="handrolled_relay.py")
    sio_a = App(logs, "socketio-A", redis.url, "socketio", script="socketio_relay.py", control=False)
    sio_b = App(logs, "socketio-B", redis.url, "socketio", script="socketio_relay.py", control=False)
    peers = {"relay": (relay_a, relay_b, []), "socketio": (sio_a, sio_b, ["--protocol=socketio"])}
    records: list[dict[str, Any]] = []
    try:
        for app in (a, b, relay_a, relay_b, sio_a, sio_b):
            await app.start()
        client = [sys.executable, str(BENCH / "scale_client.py"), f"--sender-url={a.url}"]
        placements = {"in-process": a.url, "cross-process": b.url}
        common = [f"--warmup={options.warmup}", f"--duration={options.duration}"]
        pids = {"A": a.pid, "B": b.pid, "Redis": redis.server.process.pid}
        for repetition in range(options.repeat):
            for rate in options.rates:
                for placement, receiver in placements.items():
                    argv = [*client, f"--receiver-url={receiver}", "--mode=open", f"--rate={rate}", *common]
                    argv.append(f"--pairs={options.pairs}")
                    result = await run_measured(argv, pids, options)
                    records.append({"test": "open", "placement": placement, "load": rate, **result})
                    progress(f"delivery {placement:13} {rate:>6,} msg/s rep {repetition + 1}", result)
            closed = [f"--pairs={options.closed_pairs}", f"--window={options.window}", "--mode=closed", *common]
            for placement, receiver in placements.items():
                argv = [*client, f"--receiver-url={receiver}", *closed]
                result = await run_measured(argv, pids, options)
                records.append({"test": "closed", "placement": placement, **result})
                progress(f"throughput {placement:13} rep {repetition + 1}", result)
            one = ["--pairs=1", "--window=1", "--mode=closed", *common]
            result = await run_measured([*client, f"--receiver-url={b.url}", *one], pids, options)
            records.append({"test": "single", "placement": "cross-process", **result})
            progress(f"K=1 {'cross-process':13} rep {repetition + 1}", result)
            for peer, (peer_a, peer_b, protocol) in peers.items():
                argv = [sys.executable, str(BENCH / "scale_client.py"), f"--sender-url={peer_a.url}", *protocol]
                argv.append(f"--receiver-url={peer_b.url}")
                peer_pids = {"A": peer_a.pid, "B": peer_b.pid, "Redis": redis.server.process.pid}
                for test, shape in (("closed", closed), ("single", one)):
                    result = await run_measured([*argv, *shape], peer_pids, options)
                    records.append({"test": test, "placement": peer, **result})
                    progress(f"{test:10} {peer:13} rep {repetition + 1}", result)
        fresh = await freshness(a, b, redis, options.connects)
    finally:
        for app in (a, b, relay_a, relay_b, sio_a, sio_b):
            await app.stop()
        redis.stop()
    return {"records": records, "freshness": fresh}


async def run_measured(argv: list[str], pids: dict[str, int], options: argparse.Namespace) -> dict[str, Any]:
    """Run one load generator; add each process's CPU µs per message, and the share of the cores others used.

    "Others" is everything the machine ran meanwhile but A, B, Redis, the load generator and this
    script: other people's work on a shared machine, the noise in the figures.
    """
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    ours, busy, started = own_cpu(), system_busy(), time.monotonic()
    result = await run_json(argv, options.warmup + options.duration + 60)
    wall, busy, ours = time.monotonic() - started, system_busy() - busy, own_cpu() - ours
    for name, pid in pids.items():
        used = cpu_seconds(pid) - before[name]
        result[f"cpu_us_{name}"] = used / result["sent"] * 1e6
        ours += used
    result["others_cpu"] = max(0.0, busy - ours) / (wall * (os.cpu_count() or 1))
    return result


def own_cpu() -> float:
    """CPU seconds of this script and of its children that have ended (each load generator)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def progress(what: str, result: dict[str, Any]) -> None:
    print(
        f"  {what}: {result['rate']:,.0f}/s p50 {result['p50_ms']:.2f} p99 {result['p99_ms']:.2f} ms"
        f" (others {result['others_cpu']:.0%})",
        file=sys.stderr,
    )


async def freshness(a: App, b: App, redis: OwnRedis, count: int) -> dict[str, list[float]]:
    """Connect ``count`` clients to B one by one; for each, A's stamp minus B's (ms), and the bare PUBLISH."""
    before = set(await b.ask("seen"))
    clients = []
    try:
        for _ in range(count):
            clients.append(await connect(b.url, open_timeout=5))
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.5)
        on_b, on_a = await b.ask("seen"), await a.ask("seen")
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 2)
    new = [cid for cid in on_b if cid not in before]
    missing = [cid for cid in new if cid not in on_a]
    if len(new) != count or missing:
        raise BenchError(f"freshness: {len(new)} clients stamped on B, {len(missing)} never seen on A")
    mirror = [(on_a[cid] - on_b[cid]) / 1e6 for cid in new]
    progress_line = f"  freshness: {count} connects, p50 {median(mirror):.2f} ms"
    print(progress_line, file=sys.stderr)
    return {"mirror": mirror, "publish": await bare_publish(redis, count)}


async def bare_publish(redis: OwnRedis, count: int) -> list[float]:
    """PUBLISH a timestamp, read it back on a subscriber of the same process (redis-py, hiredis): ms each."""
    latencies = []
    async with redis.client() as client, client.pubsub() as pubsub:
        await pubsub.subscribe("bench-floor")
        async with asyncio.timeout(5):
            while await pubsub.get_message(timeout=1.0) is None:
                pass  # the subscribe confirmation
        for _ in range(count):
            await client.publish("bench-floor", str(time.perf_counter_ns()))
            async with asyncio.timeout(5):
                while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)) is None:
                    pass
            latencies.append((time.perf_counter_ns() - int(message["data"])) / 1e6)
            await asyncio.sleep(0.005)
    return latencies


# 2: room fan-out, through bench/run.py


async def fanout(options: argparse.Namespace) -> list[dict[str, Any]]:
    return await fanout_records(
        FANOUT_SERVERS, options.fanout_c, options.warmup, options.fanout_duration, options.repeat
    )


# 3: mirror memory


async def mirror_memory(options: argparse.Namespace, logs: Path) -> list[dict[str, Any]]:
    records = []
    for shape in SHAPES:
        for count in options.mirror_counts:
            for traced in (False, True):
                records.append(await mirror_run(logs, shape, count, traced, options.local_connections))
                shown = "tracemalloc" if traced else "RSS"
                print(f"  mirror {shape}, {count:,} remote clients ({shown}) done", file=sys.stderr)
    return records


async def mirror_run(logs: Path, shape: str, count: int, traced: bool, local_connections: int) -> dict[str, Any]:
    """One fresh process and Redis: announce ``count`` clients of a made-up process, measure, add local clients."""
    redis = OwnRedis()
    namespace = "bench-mirror"
    app = App(logs, f"mirror-{count}", redis.url, namespace, *(["--tracemalloc"] if traced else []))
    record: dict[str, Any] = {"shape": shape, "count": count, "traced": traced}
    try:
        await app.start()
        await asyncio.sleep(0.5)
        async with redis.client() as client:
            before = (await app.ask("memory"))["traced"], rss_kib(app.pid), await used_memory(client)
            started = time.monotonic()
            await announce(client, Keys(namespace), shape, count)
            await wait_for(lambda: app.ask("stats"), lambda stats: stats["remote"] == count, 120, "mirror")
            record["load_s"] = time.monotonic() - started
            after = (await app.ask("memory"))["traced"], rss_kib(app.pid), await used_memory(client)
        if traced:
            record["traced_bytes"] = (after[0] - before[0]) / count
        else:
            record["rss_bytes"] = (after[1] - before[1]) * 1024 / count
            record["redis_bytes"] = (after[2] - before[2]) / count
            record["local_bytes"] = await local_cost(app, local_connections)
    finally:
        await app.stop()
        redis.stop()
    return record


async def used_memory(client: Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def announce(client: Redis, keys: Keys, shape: str, count: int) -> None:
    """Write and publish ``count`` client records of a made-up worker, as `RedisBackend` does (UPSERT)."""
    worker = "bench-announcer:0:00000000"
    await client.script_load(UPSERT.source)
    for first in range(0, count, 2000):
        pipe = client.pipeline(transaction=False)
        for i in range(first, min(count, first + 2000)):
            cid = uuid.uuid4().hex
            record = json.dumps({"w": worker, **SHAPES[shape](i), "ra": ["127.0.0.1", 10000 + i % 50000]})
            event = Upsert.text(cid, record)
            pipe.evalsha(UPSERT.sha, 2, keys.clients, keys.worker(worker), cid, record, keys.all, event)
        await pipe.execute()


async def local_cost(app: App, count: int) -> float:
    """Bytes of RSS per idle client connected to ``app`` itself (bench/client.py, workload idle)."""
    before = rss_kib(app.pid)

    async def measure() -> dict[str, Any]:
        await app.ask("memory")  # a full collection, as before the other figures
        await asyncio.sleep(0.5)
        return {"after": rss_kib(app.pid)}

    argv = [sys.executable, str(BENCH / "client.py"), f"--url={app.url}", "--workload=idle"]
    result = await run_json([*argv, f"--connections={count}"], 120, measure)
    return float((result["after"] - before) * 1024 / count)


async def wait_for(ask: Callable[[], Any], done: Callable[[Any], bool], within: float, what: str) -> Any:
    """Ask every 50 ms until the answer is ``done``; `BenchError` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        answer = await ask()
        if done(answer):
            return answer
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not done within {within} s (last: {answer!r})")
        await asyncio.sleep(0.05)


# 4: Redis restart


async def restart(options: argparse.Namespace, logs: Path) -> list[dict[str, Any]]:
    redis = OwnRedis()
    a = App(logs, "restart-A", redis.url, "bench-restart", "--redis-log-level=INFO")
    b = App(logs, "restart-B", redis.url, "bench-restart", "--redis-log-level=INFO")
    sockets: dict[str, list[tuple[ClientConnection, str]]] = {"A": [], "B": []}
    records = []
    try:
        for app, name in ((a, "A"), (b, "B")):
            await app.start()
            for _ in range(options.restart_clients):
                socket = await connect(app.url, open_timeout=5)
                await socket.send('{"event":"bench whoami"}')
                sockets[name].append((socket, json.loads(await asyncio.wait_for(socket.recv(), 5))["payload"]))
        await converged(a, b, sockets, 0, {"A": -1, "B": -1}, 30)
        for run in range(options.restarts):
            for kind in ("restart", "drop"):
                reconnects = {"A": (await a.ask("stats"))["reconnects"], "B": (await b.ask("stats"))["reconnects"]}
                if kind == "restart":
                    redis.server.restart()  # SIGKILL, then an empty redis-server on the same port, answering PING
                else:
                    async with redis.client() as client:
                        await client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                        await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub", "SKIPME", "yes")
                print(f"  {time.strftime('%H:%M:%S')} {kind} {run + 1}", file=sys.stderr)
                record = {"kind": kind, **await converged(a, b, sockets, run, reconnects, 30)}
                records.append(record)
                print(f"  {kind} {run + 1}: {record}", file=sys.stderr)
                await asyncio.sleep(0.3)
    finally:
        for pairs in sockets.values():
            for socket, _ in pairs:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(socket.close(), 2)
        await a.stop()
        await b.stop()
        redis.stop()
    return records


async def converged(
    a: App,
    b: App,
    sockets: dict[str, list[tuple[ClientConnection, str]]],
    run: int,
    reconnects: dict[str, int],
    within: float,
) -> dict[str, float]:
    """From now: ms until both processes have reconnected and see each other's clients, then until sends cross."""
    started = time.perf_counter()
    deadline = time.monotonic() + within
    whole = None
    attempt = 0
    while time.monotonic() < deadline:
        on_a, on_b = await a.ask("stats"), await b.ask("stats")
        rebuilt = on_a["reconnects"] > reconnects["A"] and on_b["reconnects"] > reconnects["B"]
        complete = on_a["remote"] == on_b["local"] and on_b["remote"] == on_a["local"]
        if whole is None and on_a["connected"] and on_b["connected"] and rebuilt and complete:
            whole = (time.perf_counter() - started) * 1e3
        if whole is not None:
            attempt += 1
            text = f"run-{run}-{attempt}"
            if await crosses(sockets["A"][0], sockets["B"][0], text) and await crosses(
                sockets["B"][0], sockets["A"][0], text
            ):
                return {"mirrors_ms": whole, "send_ms": (time.perf_counter() - started) * 1e3}
        await asyncio.sleep(0.005)
    raise BenchError(f"the processes did not converge within {within} s")


async def crosses(sender: tuple[ClientConnection, str], receiver: tuple[ClientConnection, str], text: str) -> bool:
    """Whether a ``send message`` from ``sender`` reaches ``receiver`` (within 1 s)."""
    payload = {"to": receiver[1], "text": text}
    await sender[0].send(json.dumps({"event": "send message", "payload": payload}))
    try:
        async with asyncio.timeout(1):
            if json.loads(await sender[0].recv())["event"] != "message sent":
                return False
            while True:
                message = json.loads(await receiver[0].recv())
                if message["event"] == "incoming message" and message["payload"]["text"] == text:
                    return True
    except TimeoutError:
        return False


# the table


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def disordered(runs: list[dict[str, Any]]) -> int | str:
    """Messages that came twice or out of order over ``runs`` ("-": runs made before it was counted)."""
    counted = [r["disordered"] for r in runs if "disordered" in r]
    return sum(counted) if counted else "-"


def ratio(top: float, bottom: float) -> str:
    return f"{top / bottom:.2f}x" if bottom else "n/a"


def delivery_table(records: list[dict[str, Any]], rates: Sequence[int]) -> tuple[list[str], list[str]]:
    def pick(test: str, placement: str, rate: int | None = None) -> list[dict[str, Any]]:
        return [r for r in records if r["test"] == test and r["placement"] == placement and r.get("load") == rate]

    lines = [
        "| open loop | in-process p50 / p99 / p99.9 ms | cross-process p50 / p99 / p99.9 ms | p99 ratio "
        "| cross p99 by run (others' CPU) | lost |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    checks = []
    for rate in rates:
        cells, p99 = [], {}
        for placement in ("in-process", "cross-process"):
            runs = pick("open", placement, rate)
            figures = [median([r[key] for r in runs]) for key in ("p50_ms", "p99_ms", "p999_ms")]
            p99[placement] = figures[1]
            cells.append(" / ".join(f"{value:.2f}" for value in figures))
        cross = sorted(pick("open", "cross-process", rate), key=lambda r: r["others_cpu"])
        lost = sum(r["lost"] for r in [*cross, *pick("open", "in-process", rate)])
        by_run = ", ".join(f"{r['p99_ms']:.2f} ({r['others_cpu']:.0%})" for r in cross)
        lines.append(
            f"| {rate:,} msg/s | {cells[0]} | {cells[1]} | {ratio(p99['cross-process'], p99['in-process'])} "
            f"| {by_run} | {lost} |"
        )
        ok = p99["cross-process"] < LATENCY_TARGET_MS
        verdict = ("PASS" if ok else "FAIL") if rate <= MODERATE_RATE else "INFO"
        checks.append(
            f"{verdict}  cross-process p99 at {rate:,} msg/s: {p99['cross-process']:.2f} ms "
            f"(target < {LATENCY_TARGET_MS} ms at up to {MODERATE_RATE:,} msg/s; in-process {p99['in-process']:.2f} ms)"
        )
        if cross:
            checks.append(
                f"INFO  ... in the quietest run (others' CPU {cross[0]['others_cpu']:.0%}): {cross[0]['p99_ms']:.2f} ms"
            )
    inside, cross = pick("closed", "in-process"), pick("closed", "cross-process")
    top_in, top_cross = median([r["rate"] for r in inside]), median([r["rate"] for r in cross])
    lines += [
        "",
        "| closed loop | in-process | cross-process | ratio | cross per run |",
        "|---|---:|---:|---:|---:|",
        f"| most messages per second | {top_in:,.0f} | {top_cross:,.0f} | {ratio(top_cross, top_in)} "
        f"| {spread([r['rate'] / 1e3 for r in cross])}k |",
    ]
    for name in ("A", "B", "Redis"):
        used = [median([r[f"cpu_us_{name}"] for r in runs]) for runs in (inside, cross)]
        shown = ratio(used[1], used[0]) if name == "A" else ""
        lines.append(f"| CPU µs per message sent, {name} | {used[0]:.1f} | {used[1]:.1f} | {shown} | |")
    others = [median([r["others_cpu"] for r in runs]) for runs in (inside, cross)]
    lines.append(f"| others' CPU | {others[0]:.0%} | {others[1]:.0%} | | |")
    peers = {name: pick("closed", name) for name in ("relay", "socketio")}
    tops = {name: median([r["rate"] for r in runs]) for name, runs in peers.items()}
    p99s = {name: median([r["p99_ms"] for r in runs]) for name, runs in peers.items()}
    p99_cross = median([r["p99_ms"] for r in cross])
    singles = {name: pick("single", name) for name in ("cross-process", "relay", "socketio")}
    single_p99 = {name: median([r["p99_ms"] for r in runs]) for name, runs in singles.items()}
    single_rate = {name: median([r["rate"] for r in runs]) for name, runs in singles.items()}
    ours = [*cross, *singles["cross-process"]]
    lost, out_of_order = sum(r["lost"] for r in ours), disordered(ours)
    lines += [
        "",
        "| closed loop, cross-process | websuckets | hand-rolled relay | ratio | python-socketio + Redis manager "
        "| ratio |",
        "|---|---:|---:|---:|---:|---:|",
        f"| K = {CLOSED_PAIRS} pairs: messages per second | {top_cross:,.0f} | {tops['relay']:,.0f} "
        f"| {ratio(top_cross, tops['relay'])} | {tops['socketio']:,.0f} | {ratio(top_cross, tops['socketio'])} |",
        f"| K = {CLOSED_PAIRS}: p99 ms | {p99_cross:.2f} | {p99s['relay']:.2f} | {ratio(p99_cross, p99s['relay'])} "
        f"| {p99s['socketio']:.2f} | {ratio(p99_cross, p99s['socketio'])} |",
        f"| K = 1: messages per second | {single_rate['cross-process']:,.0f} | {single_rate['relay']:,.0f} "
        f"| {ratio(single_rate['cross-process'], single_rate['relay'])} | {single_rate['socketio']:,.0f} "
        f"| {ratio(single_rate['cross-process'], single_rate['socketio'])} |",
        f"| K = 1: p99 ms | {single_p99['cross-process']:.2f} | {single_p99['relay']:.2f} "
        f"| {ratio(single_p99['cross-process'], single_p99['relay'])} | {single_p99['socketio']:.2f} "
        f"| {ratio(single_p99['cross-process'], single_p99['socketio'])} |",
        f"| lost | {lost} "
        f"| {sum(r['lost'] for r in [*peers['relay'], *singles['relay']])} | "
        f"| {sum(r['lost'] for r in [*peers['socketio'], *singles['socketio']])} | |",
        f"| duplicated or out of order | {out_of_order} "
        f"| {disordered([*peers['relay'], *singles['relay']])} | "
        f"| {disordered([*peers['socketio'], *singles['socketio']])} | |",
    ]
    for verdict, what in (
        (
            top_cross >= tops["relay"],
            f"K = {CLOSED_PAIRS} vs the hand-rolled websockets + redis-py relay: "
            f"{ratio(top_cross, tops['relay'])} (target >= 1.0x)",
        ),
        (
            top_cross >= 3 * tops["socketio"],
            f"K = {CLOSED_PAIRS} vs python-socketio with its Redis manager: "
            f"{ratio(top_cross, tops['socketio'])} (target >= 3.0x)",
        ),
        (
            lost == 0 and out_of_order == 0,
            f"nothing lost, duplicated or out of order: {lost} lost, {out_of_order} duplicated or out of order",
        ),
        (
            single_p99["cross-process"] <= K1_P99_TARGET_MS,
            f"K = 1 p99: {single_p99['cross-process']:.2f} ms "
            f"(target <= {K1_P99_TARGET_MS} ms; the relay {single_p99['relay']:.2f} ms)",
        ),
    ):
        checks.append(f"{'MET ' if verdict else 'MISS'} cross-process closed loop, {what}")
    return lines, checks


def fanout_table(records: list[dict[str, Any]], levels: Sequence[int]) -> tuple[list[str], list[str]]:
    def runs(server: str, c: int) -> list[dict[str, Any]]:
        return [r for r in records if r["server"] == server and r["connections"] == c]

    def rate(server: str, c: int) -> float:
        return median([r["rate"] for r in runs(server, c)])

    def per_cpu(server: str, c: int) -> float:
        return median([r["count"] / r["server_cpu"] for r in runs(server, c) if r["server_cpu"]])

    head = " | ".join(f"C={c} deliveries/s (x best peer) | C={c} per server CPU-s" for c in levels)
    lines = [f"| server | {head} | CPU server / client, C={levels[-1]} |", f"|---|{'---:|---:|' * len(levels)}---:|"]
    for server in FANOUT_SERVERS:
        cells = []
        for c in levels:
            best, best_cpu = max(rate(p, c) for p in PEERS), max(per_cpu(p, c) for p in PEERS)
            cells.append(f"{rate(server, c):,.0f} ({ratio(rate(server, c), best)})")
            cells.append(f"{per_cpu(server, c):,.0f} ({ratio(per_cpu(server, c), best_cpu)})")
        last = runs(server, levels[-1])
        cpu = [median([r[side] / r["elapsed"] for r in last]) for side in ("server_cpu", "client_cpu")]
        lines.append(f"| {SERVERS[server].label} | {' | '.join(cells)} | {cpu[0]:.0%} / {cpu[1]:.0%} |")
    checks = []
    for c in levels:
        best = max(PEERS, key=lambda p: rate(p, c))
        value = rate("websuckets_rooms", c) / rate(best, c)
        ok = value >= FANOUT_TARGET
        efficient = per_cpu("websuckets_rooms", c) / max(per_cpu(p, c) for p in PEERS)
        checks.append(
            f"{'PASS' if ok else 'FAIL'}  rooms deliveries/s at C={c}: {value:.2f}x the best peer "
            f"({SERVERS[best].label}; target ≥ {FANOUT_TARGET}x)"
        )
        checks.append(f"INFO  rooms deliveries per server CPU-s at C={c}: {efficient:.2f}x the best peer")
    return lines, checks


def memory_table(records: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| remote clients | record | Python heap / client | RSS / client | Redis / client "
        "| a local client (RSS, reference) | RSS ratio |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for shape in SHAPES:
        counts = sorted({r["count"] for r in records if r["shape"] == shape})
        for count in counts:
            traced = next(r for r in records if r["shape"] == shape and r["count"] == count and r["traced"])
            rss = next(r for r in records if r["shape"] == shape and r["count"] == count and not r["traced"])
            lines.append(
                f"| {count:,} | {shape} | {traced['traced_bytes']:,.0f} B | {rss['rss_bytes']:,.0f} B "
                f"| {rss['redis_bytes']:,.0f} B | {rss['local_bytes']:,.0f} B "
                f"| {ratio(rss['rss_bytes'], rss['local_bytes'])} |"
            )
    return lines


def restart_table(records: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| what happened to Redis | runs | mirrors whole: median / max ms | send crosses both ways: median / max ms |",
        "|---|---:|---:|---:|",
    ]
    labels = {"restart": "SIGKILL, started again empty", "drop": "connections dropped, data kept (reference)"}
    for kind, label in labels.items():
        runs = [r for r in records if r["kind"] == kind]
        mirrors, send = [r["mirrors_ms"] for r in runs], [r["send_ms"] for r in runs]
        lines.append(
            f"| {label} | {len(runs)} | {median(mirrors):.0f} / {max(mirrors):.0f} "
            f"| {median(send):.0f} / {max(send):.0f} |"
        )
    return lines


def freshness_table(fresh: dict[str, list[float]]) -> list[str]:
    lines = ["| | samples | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    labels = {
        "mirror": "client enters Session.online on B → on A",
        "publish": "bare PUBLISH → subscriber, redis-py (reference)",
    }
    for key, label in labels.items():
        values = fresh[key]
        lines.append(
            f"| {label} | {len(values)} | {percentile(values, 0.5):.2f} | {percentile(values, 0.99):.2f} "
            f"| {max(values):.2f} |"
        )
    p50 = percentile(fresh["mirror"], 0.5) / percentile(fresh["publish"], 0.5)
    lines.append(f"\nMirror p50 / bare PUBLISH p50: {p50:.2f}x.")
    return lines


def render(header: dict[str, str], results: dict[str, Any], options: argparse.Namespace) -> str:
    lines = [
        "## Scale-out results",
        "",
        f"- Command: `{header['command']}` ({header['elapsed']})",
        f"- Machine: {header['machine']}",
        f"- Method: {header['method']}",
        "- Not pinned: A, B, Redis and the load generator share the 2 cores, and other work on the machine "
        "adds noise; the per-run columns show it.",
    ]
    checks: list[str] = []
    if "delivery" in results:
        table, found = delivery_table(results["delivery"]["records"], options.rates)
        checks += found
        lines += [
            "",
            "### 1. Direct messages, process A → process B (`Session.online[to].socket.send`)",
            "",
            f"{options.pairs} senders on A, each to its own receiver on B (cross-process) or on A (in-process, the "
            "reference); latency from the sender's write to the receiver's read, over the measured window; medians "
            f"of {options.repeat} run(s). Closed loop: {options.closed_pairs} pairs, {options.window} messages in "
            "flight each. Others' CPU: the share of the machine's cores busy with anything but these processes "
            "during a run (other people's work on a shared machine: the noise).",
            "",
            *table,
        ]
    if "fanout" in results:
        table, found = fanout_table(results["fanout"], options.fanout_c)
        checks += found
        lines += [
            "",
            "### 2. Room fan-out: deliveries/s (bench/run.py's fan-out workload)",
            "",
            "One sender, C receivers; every server sends the same `chat` event to every connection but the "
            "sender. Per server CPU-s: deliveries per second of the server's own CPU time, which does not "
            "depend on the load generator keeping up. Ratios against the best of hand-rolled and FastAPI.",
            "",
            *table,
        ]
    if "memory" in results:
        lines += [
            "",
            "### 3. Mirror memory: what a process holds for each client of another process",
            "",
            "Clients announced by a made-up process through the backend's own UPSERT script; Python heap from "
            "tracemalloc, RSS and Redis's `used_memory` from separate runs without it; the reference is the RSS "
            f"of one idle client connected to the same process ({options.local_connections} of them).",
            "",
            *memory_table(results["memory"]),
        ]
    if "restart" in results:
        lines += [
            "",
            f"### 4. Redis restart: {options.restart_clients} clients on each of two processes",
            "",
            "From Redis answering PING again (or the connections dropped) until both processes have rebuilt and "
            "see all of the other's clients, then until a `send message` crosses both ways. RedisBackend "
            "defaults: heartbeat 1 s, timeout 2 s.",
            "",
            *restart_table(results["restart"]),
        ]
    if "freshness" in results:
        lines += [
            "",
            f"### 5. Mirror freshness: {options.connects} clients connecting to B, one by one",
            "",
            *freshness_table(results["freshness"]),
        ]
    lines += ["", "### Targets", "", "```", *checks, "```", ""]
    return "\n".join(lines)


# the command


PARTS = ("delivery", "fanout", "memory", "restart")


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every part, smaller and shorter (under a minute)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}")
    parser.add_argument("--repeat", type=int, help="repetitions of the timed runs (default 3, quick 1)")
    parser.add_argument("--out", type=Path, help="directory for scale_out.md and scale_out.json")
    options = parser.parse_args(argv)
    quick = options.quick
    options.parts = [part for part in options.parts.split(",") if part]
    unknown = sorted(set(options.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}")
    options.repeat = options.repeat or (1 if quick else 3)
    options.rates = [1000, 5000]
    options.pairs = 32
    options.closed_pairs, options.window = CLOSED_PAIRS, 4
    options.warmup = 0.3 if quick else 0.5
    options.duration = 0.7 if quick else 3.0
    options.fanout_c = [16, 64] if quick else [64, 256]
    options.fanout_duration = 0.7 if quick else 2.0
    options.mirror_counts = [1000] if quick else [10_000, 50_000]
    options.local_connections = 200 if quick else 1000
    options.restarts = 2 if quick else 12
    options.restart_clients = 10 if quick else 50
    options.connects = 30 if quick else 300
    return options


async def run_parts(options: argparse.Namespace, logs: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "delivery" in options.parts:
        print("delivery and freshness", file=sys.stderr)
        found = await delivery(options, logs)
        results["delivery"], results["freshness"] = found, found.pop("freshness")
    if "fanout" in options.parts:
        print("room fan-out", file=sys.stderr)
        results["fanout"] = await fanout(options)
    if "memory" in options.parts:
        print("mirror memory", file=sys.stderr)
        results["memory"] = await mirror_memory(options, logs)
    if "restart" in options.parts:
        print("Redis restart", file=sys.stderr)
        results["restart"] = await restart(options, logs)
    return results


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    logs = Path(tempfile.mkdtemp(prefix="websuckets-scale-"))
    started = time.monotonic()
    try:
        results = asyncio.run(run_parts(options, logs))
    except BenchError as error:
        print(f"scale-out benchmark failed: {error}\nlogs: {logs}", file=sys.stderr)
        return 1
    header = {
        "command": shlex.join(
            ["python", os.path.relpath(sys.argv[0], ROOT), *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": machine(),
        "method": f"warm-up {options.warmup:g} s, {options.duration:g} s measured "
        f"(fan-out {options.fanout_duration:g} s), "
        f"{options.repeat} repetition(s), interleaved; redis-server {redis_version()} on 127.0.0.1, no persistence",
        "elapsed": f"{time.monotonic() - started:.0f} s",
    }
    text = render(header, results, options)
    print(text)
    markdown = (options.out or BENCH / "results") / "scale_out.md"
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(text)
    markdown.with_suffix(".json").write_text(json.dumps({"header": header, "results": results}, indent=1))
    print(f"table: {markdown}", file=sys.stderr)
    return 0


def redis_version() -> str:
    import subprocess

    found = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False).stdout
    return next((word[2:] for word in found.split() if word.startswith("v=")), "unknown")


if __name__ == "__main__":
    sys.exit(main())
