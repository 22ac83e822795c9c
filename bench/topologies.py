"""Cross-process room broadcasts on each Redis topology: one Redis, Sentinel, a 3-master Cluster.

    .venv/bin/python bench/topologies.py           # 3 repetitions, 3 s runs
    .venv/bin/python bench/topologies.py --quick   # 1 repetition, 1 s runs

Two websuckets processes (`servers/websuckets_room_channels.py`) on a Redis of the bench's own:
K = 64 receivers on process B, each alone in a room of its own (``pair-0`` ... ``pair-63``),
and 64 senders on process A, each broadcasting to its receiver's room with 4 messages in flight
(`scale_client.py --rooms`, closed loop). The same loop runs on:

- **one Redis**, with per-room channels (websuckets now) and with the namespace's one channel
  (``RedisBackend(room_channels=False)``, websuckets 0.1: the single-channel reference);
- **Sentinel**: a master, a replica and three sentinels (the processes talk to the master);
- **Cluster**: 3 masters, no replicas; the rooms' channels spread over the slots, so over the
  masters. Each master's share of the cluster's Redis CPU is shown (target: none over 50 %).

Per topology: deliveries per second, p99 (ms), lost, and the Redis CPU (µs) per message. The
servers come from ``tests/redis_server.py`` (real redis-servers, started here, on 127.0.0.1).
The table goes to stdout and ``bench/results/topologies.md`` (``--out DIR`` elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from report import machine
from run import BENCH, ROOT, redis_servers
from scale_out import App, run_measured

PAIRS, WINDOW = 64, 4
MASTER_SHARE_TARGET = 0.5


@dataclass
class Topology:
    """A Redis deployment to run the loop on: its URL, and the redis-server processes to count."""

    name: str
    url: str
    servers: list[Any]
    stop: Callable[[], None]
    extra: tuple[str, ...] = ()
    masters: list[Any] = field(default_factory=list)
    """On a cluster: its masters, whose CPU shares are shown."""


def start(name: str) -> Topology:
    servers = redis_servers()
    if name.startswith("one Redis"):
        server = servers.RedisServer()
        server.start()
        extra = ("--shared-channel",) if "one channel" in name else ()
        return Topology(name, server.url, [server], server.stop, extra)
    if name == "Sentinel":
        sentinels = servers.RedisSentinels()
        sentinels.start()
        return Topology(name, sentinels.url(), [sentinels.master, sentinels.replica], sentinels.stop)
    cluster = servers.RedisCluster(masters=3, replicas=0)
    cluster.start()
    return Topology(name, cluster.url(), cluster.nodes, cluster.stop, masters=cluster.nodes)


def cpu_ns(pid: int) -> int:
    """A process's time on a CPU in ns (/proc/PID/schedstat): Redis's main thread does its commands."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


async def one_run(name: str, options: argparse.Namespace, logs: Path) -> dict[str, Any]:
    topology = await asyncio.to_thread(start, name)
    a = App(logs, f"{name}-A", topology.url, "bench-topologies", *topology.extra, script="websuckets_room_channels.py")
    b = App(logs, f"{name}-B", topology.url, "bench-topologies", *topology.extra, script="websuckets_room_channels.py")
    try:
        for app in (a, b):
            await app.start()
        argv = [sys.executable, str(BENCH / "scale_client.py"), f"--sender-url={a.url}", f"--receiver-url={b.url}"]
        argv += [f"--pairs={PAIRS}", f"--window={WINDOW}", "--mode=closed", "--rooms"]
        argv += [f"--warmup={options.warmup}", f"--duration={options.duration}"]
        before = {server.port: cpu_ns(server.process.pid) for server in topology.servers}
        result = await run_measured(argv, {"A": a.pid, "B": b.pid}, options)
        spent = {server.port: cpu_ns(server.process.pid) - before[server.port] for server in topology.servers}
        result["redis_cpu_us"] = sum(spent.values()) / 1e3 / max(result["sent"], 1)
        if topology.masters:
            total = sum(spent[server.port] for server in topology.masters) or 1
            result["master_shares"] = sorted((spent[server.port] / total for server in topology.masters), reverse=True)
        return {"topology": name, **result}
    finally:
        for app in (a, b):
            await app.stop()
        await asyncio.to_thread(topology.stop)


def table(records: list[dict[str, Any]], names: list[str]) -> tuple[list[str], list[str]]:
    lines = [
        f"| topology | deliveries/s (K = {PAIRS}) | vs one Redis, one channel | p99 ms | lost "
        "| Redis CPU µs per message | masters' shares of Redis CPU |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    checks = []
    reference = statistics.median(r["rate"] for r in records if r["topology"] == "one Redis, one channel (0.1)")
    for name in names:
        runs = [r for r in records if r["topology"] == name]
        rate = statistics.median(r["rate"] for r in runs)
        shares = ""
        if "master_shares" in runs[0]:
            median_shares = [statistics.median(r["master_shares"][i] for r in runs) for i in range(3)]
            shares = " / ".join(f"{share:.0%}" for share in median_shares)
            top = max(median_shares)
            verdict = "MET " if top <= MASTER_SHARE_TARGET else "MISS"
            checks.append(f"{verdict} Cluster: the busiest master does {top:.0%} of the Redis CPU (target <= 50%)")
        lines.append(
            f"| {name} | {rate:,.0f} | {rate / reference:.2f}x | {statistics.median(r['p99_ms'] for r in runs):.2f} "
            f"| {sum(r['lost'] for r in runs)} | {statistics.median(r['redis_cpu_us'] for r in runs):.1f} | {shares} |"
        )
    return lines, checks


async def measure(options: argparse.Namespace, names: list[str]) -> list[dict[str, Any]]:
    records = []
    with tempfile.TemporaryDirectory(prefix="websuckets-topologies-") as logs:
        for repetition in range(options.repeat):
            for name in names if repetition % 2 == 0 else names[::-1]:
                record = await one_run(name, options, Path(logs))
                records.append(record)
                print(
                    f"  {name} rep {repetition + 1}: {record['rate']:,.0f}/s, p99 {record['p99_ms']:.2f} ms",
                    file=sys.stderr,
                )
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition of 1 s runs")
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    options = parser.parse_args(argv)
    options.repeat = options.repeat or (1 if options.quick else 3)
    options.warmup, options.duration = (0.3, 1.0) if options.quick else (0.5, 3.0)
    names = ["one Redis, one channel (0.1)", "one Redis", "Sentinel", "Cluster, 3 masters"]
    records = asyncio.run(measure(options, names))
    rows, checks = table(records, names)
    text = "\n".join(
        [
            *rows,
            "",
            f"Two processes; {PAIRS} senders on A, each broadcasting to a room with one receiver on B, {WINDOW} in "
            f"flight each; medians of {options.repeat} run(s) of {options.duration:g} s, alternated. Nothing pinned: "
            f"the processes, the Redis servers and the load generator share the machine's cores. {machine()}.",
            "",
            *checks,
        ]
    )
    print(text)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "topologies.md").write_text(text + "\n")
    (options.out / "topologies.json").write_text(json.dumps(records, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
