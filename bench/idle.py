"""Idle connections at scale: memory per connection, keepalive CPU, time to accept them all.

    .venv/bin/python bench/idle.py                       # 100,000 connections (or as many as the fd limit allows)
    .venv/bin/python bench/idle.py --connections 5000 --window 5 --repeat 1   # a quick look

Two servers in turn, each fresh, on 127.0.0.1:

- **websuckets**: ``servers/websuckets_app.py --variant defaults``: every default of `WebSuckets`
  (rate limit, origin check, keepalive pings every 20 s, compression off), but ``max_connections``,
  whose default of 10,000 would refuse the rest: it is raised to the count measured, and said so;
- **websockets**: ``servers/raw_echo.py``, websockets' own ``serve`` with its defaults (pings every
  20 s): the same-run reference, the floor that websuckets builds on.

The connections come from ``bench/client.py --workload idle`` (picows, which answers pings),
in as many processes as it takes to keep each under the file-descriptor limit, each from its own
source address on 127.0.0.0/8 so that no address runs out of ephemeral ports. Measured:

- **KiB per connection**: the server's RSS once they are all open, less its RSS before, over the count;
- **accept s**: from the clients' start to the last connection's handshake;
- **keepalive CPU**: the server's CPU time over ``--window`` seconds of idleness, as a share of
  one core, and in µs per connection per ping interval (every connection is pinged once per 20 s).

The fd limit is raised to its hard limit first. A process cannot hold more connections than
that: when it is below ``--connections``, the bench measures as many as fit and says so; raising
the hard limit needs CAP_SYS_RESOURCE (``ulimit -Hn`` as root, ``LimitNOFILE=`` in systemd).
The table goes to stdout and ``bench/results/idle.md`` (``--out DIR`` elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from run import ROOT, cpu_seconds, free_port, rss_kib

HERE = Path(__file__).parent
SERVERS = {
    "websuckets": ("servers/websuckets_app.py", "--variant", "defaults"),
    "websockets": ("servers/raw_echo.py",),
}
RESERVED_FDS = 200
"""File descriptors a process keeps for itself: its listening socket, logs, pipes, Python's own."""
PER_CLIENT_PROCESS = 15_000
"""Connections each client process opens by default: under the fd limit, and under one source address's ports."""
PING_INTERVAL = 20.0
TARGET_KIB = 15.0


def raise_fd_limit() -> int:
    """Raise this process's (and its children's) soft fd limit to the hard limit; return it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def start_server(name: str, port: int, connections: int) -> asyncio.subprocess.Process:
    command = [sys.executable, str(HERE / SERVERS[name][0]), *SERVERS[name][1:], "--port", str(port)]
    if name == "websuckets":
        command += ["--max-connections", str(connections)]
    server = await asyncio.create_subprocess_exec(*command, cwd=HERE / "servers")
    async with asyncio.timeout(20):
        while True:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                return server
            await asyncio.sleep(0.1)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def read_json(process: asyncio.subprocess.Process, within: float) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), within)
    if not line:
        raise RuntimeError(f"client {process.pid} ended before it answered (exit {await process.wait()})")
    return dict(json.loads(line))


async def measure(name: str, connections: int, per_client: int, window: float) -> dict[str, Any]:
    """One fresh server: open the connections, hold them idle for ``window`` seconds, close them."""
    port = free_port()
    server = await start_server(name, port, connections)
    clients: list[asyncio.subprocess.Process] = []
    try:
        await asyncio.sleep(0.5)
        before = rss_kib(server.pid)
        shares = [per_client] * (connections // per_client)
        if connections % per_client:
            shares.append(connections % per_client)
        started = time.perf_counter()
        for index, share in enumerate(shares):
            clients.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(HERE / "client.py"),
                    *("--url", f"ws://127.0.0.1:{port}/", "--workload", "idle", "--connections", str(share)),
                    *("--source", f"127.0.{index // 250}.{2 + index % 250}", "--hold", str(window + 600)),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        connected = [await read_json(client, 60 + connections / 50) for client in clients]
        accept_seconds = time.perf_counter() - started
        if any(report.get("phase") != "connected" for report in connected):
            raise RuntimeError(f"a client did not connect: {connected}")
        await asyncio.sleep(1.0)
        after = rss_kib(server.pid)
        cpu_before, idle_from = cpu_seconds(server.pid), time.perf_counter()
        await asyncio.sleep(window)
        idle_cpu = cpu_seconds(server.pid) - cpu_before
        idle_seconds = time.perf_counter() - idle_from
        for client in clients:
            assert client.stdin is not None
            client.stdin.write(b"close\n")
            await client.stdin.drain()
        for client in clients:
            await read_json(client, 60)
        return {
            "connections": connections,
            "kib": (after - before) / connections,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "accept_s": accept_seconds,
            "idle_core_share": idle_cpu / idle_seconds,
            "ping_us": idle_cpu / idle_seconds * PING_INTERVAL / connections * 1e6,
        }
    finally:
        for client in clients:
            with contextlib.suppress(ProcessLookupError):
                client.kill()
            await client.wait()
        await stop(server)


def report(results: dict[str, list[dict[str, Any]]], requested: int, hard_limit: int) -> str:
    medians = {
        name: {key: statistics.median(run[key] for run in runs) for key in runs[0]} for name, runs in results.items()
    }
    count = int(medians["websuckets"]["connections"])
    lines = [f"Idle connections: {count:,} on one process, medians of {len(results['websuckets'])} run(s)."]
    if count < requested:
        lines.append(
            f"Asked for {requested:,}; the fd hard limit here is {hard_limit:,}, so one process can hold "
            f"{count:,} (raising it needs CAP_SYS_RESOURCE)."
        )
    lines += [
        "websuckets keeps every default but max_connections, raised to the count measured.",
        "",
        "| server | KiB per connection | connections per GiB | accept all, s | keepalive CPU, % of a core "
        "| µs per connection per ping |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, figures in medians.items():
        lines.append(
            f"| {name} | {figures['kib']:.1f} | {1024 * 1024 / figures['kib']:,.0f} | {figures['accept_s']:.1f} "
            f"| {figures['idle_core_share'] * 100:.2f} | {figures['ping_us']:.1f} |"
        )
    ours, floor = medians["websuckets"], medians["websockets"]
    verdict = "MET" if ours["kib"] <= TARGET_KIB else "MISS"
    lines += [
        "",
        f"websuckets / websockets: memory {ours['kib'] / floor['kib']:.2f}x, accept time "
        f"{ours['accept_s'] / floor['accept_s']:.2f}x, keepalive CPU "
        f"{ours['idle_core_share'] / max(floor['idle_core_share'], 1e-9):.2f}x",
        f"target <= {TARGET_KIB:.0f} KiB per connection with the defaults: {verdict} ({ours['kib']:.1f} KiB)",
    ]
    return "\n".join(lines)


async def measure_all(options: argparse.Namespace) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Every server, ``--repeat`` times, alternating which goes first; and the fd hard limit."""
    hard_limit = raise_fd_limit()
    connections = min(options.connections, hard_limit - RESERVED_FDS)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVERS}
    for repetition in range(options.repeat):
        for name in SERVERS if repetition % 2 == 0 else list(SERVERS)[::-1]:
            result = await measure(name, connections, options.per_client, options.window)
            results[name].append(result)
            print(
                f"  {name:10} rep {repetition + 1}: {result['kib']:.1f} KiB/conn, accept {result['accept_s']:.1f} s, "
                f"keepalive {result['idle_core_share'] * 100:.2f} % of a core",
                file=sys.stderr,
            )
    return results, hard_limit


def main(options: argparse.Namespace) -> None:
    results, hard_limit = asyncio.run(measure_all(options))
    table = report(results, options.connections, hard_limit)
    print(table)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "idle.md").write_text(table + "\n")
    (out / "idle.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=100_000)
    parser.add_argument("--window", type=float, default=2 * PING_INTERVAL + 5, help="seconds held idle")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--per-client", type=int, default=PER_CLIENT_PROCESS, help="connections per client process")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    main(parser.parse_args())
