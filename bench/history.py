"""What room history costs: resume latency, and room fan-out with and without history, each against a reference.

    .venv/bin/python bench/history.py            # both parts (about 2 minutes)
    .venv/bin/python bench/history.py --quick    # both parts, smaller and shorter (about 20 seconds)

1. **Resume latency**: a fresh connection sends ``websuckets resume`` from a position, then the
   app's own join command (``room join``, which calls ``Session.join``), back to back; the time
   from the first frame written to the ``websuckets position`` event with ``recovered: true``,
   every missed message received before it. For 0, 100 and 1,000 missed messages, in a room
   keeping 2,000 (full when measured), on `MemoryBackend` and on `RedisBackend` (one process, a
   redis-server of its own). Reference, same run and server: the same join of a room without
   history, until the join command's answer; and the plain join of a history room
   (``recovered: null``), to tell reading the room's position from replaying.
2. **Room fan-out with history**: `bench/run.py`'s fan-out workload (the one `bench/scale_out.py`
   runs: one sender, C receivers in one room, ``Session.broadcast(..., room=...)``), the room
   keeping 2,000 messages against the same room without history, on both backends. Target:
   history keeps at least 0.85x of the deliveries per second.

The table goes to stdout and ``bench/results/history.md`` (every figure also to
``history.json``); ``--out DIR`` writes both to ``DIR``. Everything runs on 127.0.0.1, the
servers in processes of their own (`bench/servers/websuckets_history.py`,
`bench/servers/websuckets_rooms.py --history 2000`), with every wait bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect
from report import machine
from run import BENCH, ROOT, Bench, BenchError, fanout_records
from run import parse_options as run_options
from scale_out import median, percentile, ratio, redis_version

HISTORY_SIZE = 2000
"""Messages each history room keeps (``History(size=...)``), in both parts."""
BACKENDS = {"MemoryBackend": "websuckets_history", "RedisBackend": "websuckets_history_redis"}
FANOUT_PAIRS = {
    "MemoryBackend": ("websuckets_rooms", "websuckets_rooms_history"),
    "RedisBackend": ("websuckets_rooms_redis", "websuckets_rooms_redis_history"),
}
"""Per backend: the fan-out server without history (the reference), and with it."""
FANOUT_TARGET = 0.85
PLAIN_JOIN = "plain join, room without history (reference)"
HISTORY_JOIN = "join a history room, no resume"
POSITION = b'{"event":"websuckets position"'
JOINED = b'{"event":"joined"'
SAID = b'{"event":"said"'
ERROR = b'{"event":"error"'


# 1: resume latency


class Probe(WSListener):
    """One fresh connection: notes when the join's answer and the position arrive, and counts ``said``."""

    def __init__(self) -> None:
        self.transport: WSTransport | None = None
        self.said = 0
        self.position: dict[str, Any] | None = None
        self.at: dict[str, float] = {}
        self.done = asyncio.get_running_loop().create_future()
        self.wait_for = POSITION

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            if frame.msg_type is WSMsgType.CLOSE:
                transport.disconnect()
            return
        now = time.perf_counter()
        data = frame.get_payload_as_bytes()
        if data.startswith(SAID):
            self.said += 1
            return
        if data.startswith(POSITION):
            self.at["position"] = now
            self.position = json.loads(data)["payload"]
        elif data.startswith(JOINED):
            self.at["joined"] = now
        elif data.startswith(ERROR):
            self.fail(data)
        if data.startswith(self.wait_for) and not self.done.done():
            self.done.set_result(None)

    def fail(self, data: bytes) -> None:
        if not self.done.done():
            self.done.set_exception(BenchError(f"the server answered {data[:300]!r}"))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.done.done():
            self.done.set_exception(BenchError("the server closed the connection"))

    def send(self, event: str, payload: Any) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, json.dumps({"event": event, "payload": payload}).encode())

    async def close(self) -> None:
        assert self.transport is not None
        self.transport.send_close(WSCloseCode.OK)
        try:
            await asyncio.wait_for(self.transport.wait_disconnected(), 5)
        except TimeoutError:
            self.transport.disconnect()


class Control(Probe):
    """The connection that fills rooms (``bench fill``); it joins none, so it hears none of it."""

    async def fill(self, room: str, count: int) -> tuple[str, int]:
        """Broadcast ``count`` messages to ``room``: the position of the first."""
        self.done = asyncio.get_running_loop().create_future()
        self.filled: dict[str, Any] | None = None
        self.send("bench fill", {"room": room, "count": count})
        async with asyncio.timeout(60):
            await self.done
        assert self.filled is not None
        epoch, offset = self.filled["first"]
        return epoch, offset

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        data = frame.get_payload_as_bytes()
        if data.startswith(b'{"event":"filled"'):
            self.filled = json.loads(data)["payload"]
            self.done.set_result(None)
        elif frame.msg_type is WSMsgType.TEXT:
            self.fail(data)


async def open_probe(url: str, kind: type[Probe] = Probe) -> Any:
    _, probe = await ws_connect(kind, url, websocket_handshake_timeout=10)
    return probe


async def one_resume(url: str, room: str, since: tuple[str, int] | None, missed: int) -> dict[str, float]:
    """A fresh connection resumes ``room`` from ``since`` (``None``: a plain join) and joins it: ms until done."""
    probe: Probe = await open_probe(url)
    try:
        if since is None and not room.startswith("history:"):
            probe.wait_for = JOINED
        started = time.perf_counter()
        if since is not None:
            probe.send("websuckets resume", {"rooms": {room: {"epoch": since[0], "offset": since[1]}}})
        probe.send("room join", {"room": room})
        async with asyncio.timeout(30):
            await probe.done
        ended = probe.at["joined" if probe.wait_for == JOINED else "position"]
        if since is not None:
            expected = {"room": room, "epoch": since[0], "offset": since[1] + missed, "recovered": True}
            if probe.position != expected or probe.said != missed:
                raise BenchError(f"resume of {missed} got {probe.said} messages, then {probe.position}")
        return {"ms": (ended - started) * 1e3}
    finally:
        await probe.close()


async def resume_cases(url: str, options: argparse.Namespace) -> list[dict[str, Any]]:
    """Every case of one server, repetitions interleaved (each case once, then again): one record a run."""
    control: Control = await open_probe(url, Control)
    records = []
    try:
        for missed in options.missed:  # full rooms: a read scans what a full ring buffer or stream holds
            await control.fill(f"history:{missed}", options.size)
        await control.fill("history:join", 1)
        for repetition in range(-options.resume_warmup, options.resumes):
            for missed in options.missed:
                room = f"history:{missed}"
                since = await control.fill(room, missed + 1)  # the client saw the first; it missed the rest
                result = await one_resume(url, room, since, missed)
                records.append({"case": f"resume, {missed:,} missed", "missed": missed, **result})
            records.append({"case": PLAIN_JOIN, **await one_resume(url, "plain", None, 0)})
            records.append({"case": HISTORY_JOIN, **await one_resume(url, "history:join", None, 0)})
            if repetition < 0:  # warm-up
                del records[-len(options.missed) - 2 :]
    finally:
        await control.close()
    return records


async def resume_latency(options: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    results = {}
    bench = Bench(run_options(["--no-plot"]))
    try:
        await asyncio.gather(*(bench.start(name) for name in BACKENDS.values()))
        for backend, name in BACKENDS.items():
            _, port = bench.running[name]
            results[backend] = await resume_cases(f"ws://127.0.0.1:{port}/", options)
            found = summarise(results[backend])
            shown = ", ".join(f"{case}: {p50:.2f} ms" for case, (p50, _) in found.items())
            print(f"  resume on {backend}: p50 {shown}", file=sys.stderr)
    finally:
        await bench.stop_all()
    return results


def summarise(records: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Per case, in the order measured: p50 and p99 in ms."""
    cases: dict[str, list[float]] = {}
    for record in records:
        cases.setdefault(record["case"], []).append(record["ms"])
    return {case: (percentile(values, 0.5), percentile(values, 0.99)) for case, values in cases.items()}


# 2: room fan-out with and without history


async def fanout(options: argparse.Namespace) -> list[dict[str, Any]]:
    servers = [name for pair in FANOUT_PAIRS.values() for name in pair]
    return await fanout_records(servers, options.fanout_c, options.warmup, options.duration, options.repeat)


# the table


def resume_table(results: dict[str, list[dict[str, Any]]]) -> tuple[list[str], list[str]]:
    lines = [
        "| backend | what the fresh connection does | runs | p50 ms | p99 ms | p50 x plain join |",
        "|---|---|---:|---:|---:|---:|",
    ]
    checks = []
    for backend, records in results.items():
        found = summarise(records)
        runs = {case: sum(1 for r in records if r["case"] == case) for case in found}
        reference = found[PLAIN_JOIN][0]
        for case in (PLAIN_JOIN, HISTORY_JOIN, *(c for c in found if c.startswith("resume"))):
            p50, p99 = found[case]
            lines.append(f"| {backend} | {case} | {runs[case]} | {p50:.2f} | {p99:.2f} | {ratio(p50, reference)} |")
        most = max((r["missed"] for r in records if "missed" in r), default=0)
        worst = found[f"resume, {most:,} missed"]
        checks.append(
            f"INFO  resume of {most:,} missed messages on {backend}: p50 {worst[0]:.2f} ms, p99 {worst[1]:.2f} ms "
            f"({ratio(worst[0], reference)} a plain join's p50)"
        )
    return lines, checks


def fanout_table(records: list[dict[str, Any]], levels: Sequence[int]) -> tuple[list[str], list[str]]:
    def runs(server: str, c: int) -> list[dict[str, Any]]:
        return sorted(
            (r for r in records if r["server"] == server and r["connections"] == c), key=lambda r: r["repetition"]
        )

    def per_cpu(run: dict[str, Any]) -> float:
        return float(run["count"] / run["server_cpu"]) if run["server_cpu"] else float("nan")

    def redis_us(server: str, c: int) -> str:
        found = [r["redis_cpu"] / r["count"] * c * 1e6 for r in runs(server, c) if r.get("redis_cpu") is not None]
        return f"{median(found):.1f}" if found else "-"

    lines = [
        "| backend | C | deliveries/s without history | with history | ratio (by run) "
        "| deliveries per server CPU-s, without / with | ratio | Redis CPU µs per broadcast, without / with "
        "| others' CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    checks = []
    for backend, (plain, kept) in FANOUT_PAIRS.items():
        for c in levels:
            pairs = list(zip(runs(plain, c), runs(kept, c), strict=True))
            rates = [kept_run["rate"] / plain_run["rate"] for plain_run, kept_run in pairs]
            cpus = [per_cpu(kept_run) / per_cpu(plain_run) for plain_run, kept_run in pairs]
            others = median([r.get("others_cpu", float("nan")) for pair in pairs for r in pair])
            plain_rate, kept_rate = (median([r["rate"] for r in runs(s, c)]) for s in (plain, kept))
            plain_cpu, kept_cpu = (median([per_cpu(r) for r in runs(s, c)]) for s in (plain, kept))
            lines.append(
                f"| {backend} | {c} | {plain_rate:,.0f} | {kept_rate:,.0f} "
                f"| {median(rates):.2f}x ({', '.join(f'{x:.2f}' for x in rates)}) "
                f"| {plain_cpu:,.0f} / {kept_cpu:,.0f} | {median(cpus):.2f}x "
                f"| {redis_us(plain, c)} / {redis_us(kept, c)} | {others:.0%} |"
            )
            value = median(rates)
            checks.append(
                f"{'MET' if value >= FANOUT_TARGET else 'MISS'}  {backend} room fan-out with history at C={c}: "
                f"{value:.3f}x the deliveries/s without (target ≥ {FANOUT_TARGET}x)"
            )
            checks.append(
                f"INFO  ... per server CPU-second: {median(cpus):.3f}x (less disturbed by the load generator and "
                "by other work on the machine)"
            )
    return lines, checks


def render(header: dict[str, str], results: dict[str, Any], options: argparse.Namespace) -> str:
    lines = [
        "## Room history results",
        "",
        f"- Command: `{header['command']}` ({header['elapsed']})",
        f"- Machine: {header['machine']}",
        f"- Method: {header['method']}",
        "- Servers pinned to CPU 0 when taskset exists; redis-server, the load generator and this script are not, "
        "and other work on the machine adds noise; the per-run columns show it.",
    ]
    checks: list[str] = []
    if "resume" in results:
        table, found = resume_table(results["resume"])
        checks += found
        lines += [
            "",
            "### 1. Resume latency: a fresh connection sends `websuckets resume` and the app's join",
            "",
            f"From the first frame written to the `websuckets position` event with `recovered: true`, every missed "
            f"message received before it; rooms keep {options.size:,} messages and are full. Reference: the same "
            "join command on a room without history, until its answer. p99 over "
            f"{options.resumes} runs is close to their maximum.",
            "",
            *table,
        ]
    if "fanout" in results:
        table, found = fanout_table(results["fanout"], options.fanout_c)
        checks += found
        lines += [
            "",
            "### 2. Room fan-out with history: deliveries/s (bench/run.py's fan-out workload)",
            "",
            "One sender, C receivers in one room, `Session.broadcast(..., room=...)`; the room keeps "
            f"{HISTORY_SIZE:,} messages, or none (the reference). Medians of {options.repeat} run(s); each "
            "repetition runs the two one after the other (every other repetition in reverse order), and the ratio "
            "is the median of those pairs' ratios, each shown in brackets. Per server CPU-s: deliveries per second "
            "of the server's own CPU time; Redis's CPU is shown apart, per message broadcast. Others' CPU: the "
            "share of the machine's cores busy with anything but the server, the load generator and Redis during "
            "the runs (other people's work on a shared machine: the noise).",
            "",
            *table,
        ]
    lines += ["", "### Targets", "", "```", *checks, "```", ""]
    return "\n".join(lines)


# the command


PARTS = ("resume", "fanout")


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="both parts, smaller and shorter (about 20 seconds)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}")
    parser.add_argument("--missed", help="comma-separated missed messages to resume (default 0,100,1000)")
    parser.add_argument("--resumes", type=int, help="timed resumes of each case (default 50, quick 10)")
    parser.add_argument("--concurrency", help="comma-separated fan-out receivers (default 64,256, quick 64)")
    parser.add_argument("--warmup", type=float, help="fan-out seconds before measuring (default 0.5, quick 0.3)")
    parser.add_argument("--duration", type=float, help="fan-out seconds measured (default 2, quick 1)")
    parser.add_argument("--repeat", type=int, help="fan-out repetitions, interleaved (default 4, quick 2)")
    parser.add_argument("--out", type=Path, help="directory for history.md and history.json")
    options = parser.parse_args(argv)
    quick = options.quick
    options.parts = [part for part in options.parts.split(",") if part]
    unknown = sorted(set(options.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}")
    options.missed = [int(n) for n in (options.missed or "0,100,1000").split(",")]
    if max(options.missed) >= HISTORY_SIZE:
        parser.error(f"rooms keep {HISTORY_SIZE} messages: resume fewer")
    options.size = HISTORY_SIZE
    options.resumes = options.resumes or (10 if quick else 50)
    options.resume_warmup = 1 if quick else 3
    options.fanout_c = [int(c) for c in (options.concurrency or ("64" if quick else "64,256")).split(",")]
    options.warmup = options.warmup if options.warmup is not None else (0.3 if quick else 0.5)
    options.duration = options.duration if options.duration is not None else (1.0 if quick else 2.0)
    options.repeat = options.repeat or (2 if quick else 4)
    return options


async def run_parts(options: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "resume" in options.parts:
        print("resume latency", file=sys.stderr)
        results["resume"] = await resume_latency(options)
    if "fanout" in options.parts:
        print("room fan-out with and without history", file=sys.stderr)
        results["fanout"] = await fanout(options)
    return results


def method(options: argparse.Namespace) -> str:
    parts = []
    if "resume" in options.parts:
        parts.append(
            f"resume: {options.resumes} timed runs of each case after {options.resume_warmup} untimed, interleaved"
        )
    if "fanout" in options.parts:
        parts.append(
            f"fan-out: warm-up {options.warmup:g} s, {options.duration:g} s measured, "
            f"{options.repeat} repetition(s), interleaved"
        )
    return "; ".join([*parts, f"redis-server {redis_version()} on 127.0.0.1, no persistence"])


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    started = time.monotonic()
    try:
        results = asyncio.run(run_parts(options))
    except BenchError as error:
        print(f"history benchmark failed: {error}", file=sys.stderr)
        return 1
    header = {
        "command": shlex.join(
            ["python", os.path.relpath(sys.argv[0], ROOT), *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": machine(),
        "method": method(options),
        "elapsed": f"{time.monotonic() - started:.0f} s",
    }
    text = render(header, results, options)
    print(text)
    markdown = (options.out or BENCH / "results") / "history.md"
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(text)
    markdown.with_suffix(".json").write_text(json.dumps({"header": header, "results": results}, indent=1))
    print(f"table: {markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
