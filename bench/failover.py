"""Redis Sentinel failover, measured: the outage window, and what an acknowledged broadcast can lose.

    .venv/bin/python bench/failover.py           # 5 SENTINEL FAILOVERs, then 3 kills of the master
    .venv/bin/python bench/failover.py --quick   # 2 and 1

A master, a replica and three sentinels (``tests/redis_server.py``'s `RedisSentinels`: quorum 2,
a master called down after 1 s) and two websuckets apps, A and B, on the sentinels' URL
(`RedisBackend` with ``heartbeat=0.2``, ``timeout=1.0``), served on 127.0.0.1 in this process.
Alice, on A, broadcasts to a room with history, the next broadcast 20 ms after each answer;
Bob, on B, is in the room. Each round fails the master over (``SENTINEL FAILOVER``, or SIGKILL of
the master, started again afterwards to come back as the replica) and probes until the sentinels
name the new master, both apps are on it, and the last 10 broadcasts reached Bob. Per round:

- **window**: from the first broadcast that failed or never reached Bob to the first one after
  the last such, when every later one arrives;
- **told**: broadcasts whose sender got ``backend_unavailable`` (or another error): not sent;
- **acknowledged, lost**: broadcasts whose sender got its position but Bob never got (after 3 s
  more): written to the old master after the promotion, or not replicated before it. They
  should all fall inside the window (the documented loss); the table says whether they did.

The table goes to stdout and ``bench/results/failover.md`` (``--out DIR`` elsewhere). Every wait
is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from report import machine
from run import ROOT, redis_servers
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Context, History, Session, WebSuckets
from websuckets.backends.redis import RedisBackend

PAUSE = 0.02
"""Seconds between a broadcast's answer and the next broadcast."""
SETTLED = 10
"""A round ends when this many broadcasts in a row reached Bob, on the new master."""


class Say(BaseModel):
    text: str


def bench_app(url: str) -> WebSuckets:
    """``join`` the room ``lobby`` (history kept); ``say`` broadcasts there and answers ``sent``."""
    backend = RedisBackend(url, heartbeat=0.2, timeout=1.0)
    app = WebSuckets(backend=backend, history={"lobby": History(size=100_000)}, rate_limit=None)
    group = CommandGroup()

    @group.command("join")
    async def join(socket: ServerConnection, ctx: Context) -> None:
        await Session.join(socket.id, "lobby")
        await ctx.reply("joined")

    @group.command("say")
    async def say(socket: ServerConnection, model: Say, ctx: Context) -> None:
        await Session.broadcast(ClientEvent("said", model.text), room="lobby")
        await ctx.reply("sent")

    app.include_command_group(group)
    return app


@dataclass
class Round:
    """One failover: every broadcast's send time, whether its sender was told it failed, when Bob got it."""

    kind: str
    start: float = field(default_factory=time.monotonic)
    sent: list[float] = field(default_factory=list)
    told: set[int] = field(default_factory=set)
    heard: dict[int, float] = field(default_factory=dict)

    def bad(self) -> list[int]:
        return [n for n in range(len(self.sent)) if n in self.told or n not in self.heard]

    def window(self) -> float:
        bad = self.bad()
        if not bad:
            return 0.0
        after = bad[-1] + 1
        end = self.sent[after] if after < len(self.sent) else self.sent[-1]
        return end - self.sent[bad[0]]

    def acknowledged_lost(self) -> list[int]:
        return [n for n in range(len(self.sent)) if n not in self.told and n not in self.heard]

    def settled(self) -> bool:
        last = range(len(self.sent) - SETTLED, len(self.sent))
        return len(self.sent) >= SETTLED and all(n in self.heard and n not in self.told for n in last)

    def summary(self) -> dict[str, Any]:
        bad = self.bad()
        lost = self.acknowledged_lost()
        inside = [n for n in lost if bad and bad[0] <= n <= bad[-1]]
        return {
            "kind": self.kind,
            "window_s": self.window(),
            "broadcasts": len(self.sent),
            "told": len(self.told),
            "acknowledged_lost": len(lost),
            "lost_outside_window": len(lost) - len(inside),
        }


async def ask(socket: ClientConnection, event: str, payload: Any = None, within: float = 5.0) -> dict[str, Any]:
    await socket.send(json.dumps({"event": event, "payload": payload, "id": 1}))
    async with asyncio.timeout(within):
        while True:
            answer = json.loads(await socket.recv())
            payload = answer.get("payload")
            if answer.get("id") == 1 or (answer["event"] == "error" and payload.get("id") == 1):
                return dict(answer)


async def hear(bob: ClientConnection, round_: list[Round]) -> None:
    """Bob's receiving loop: each ``said`` noted in the current round, with its arrival time."""
    async for frame in bob:
        message = json.loads(frame)
        if message["event"] == "said":
            kind, _, number = message["payload"].partition(":")
            current = round_[0]
            if kind == current.kind:
                current.heard[int(number)] = time.monotonic()


async def probe(alice: ClientConnection, current: Round, done: Any, within: float) -> None:
    """Broadcast until ``done()`` and the round settled; fail after ``within`` seconds."""
    while not (done() and current.settled()):
        if time.monotonic() - current.start > within:
            raise SystemExit(f"{current.kind}: not back within {within} s: {current.summary()}")
        number = len(current.sent)
        current.sent.append(time.monotonic())
        try:
            answer = await ask(alice, "say", {"text": f"{current.kind}:{number}"}, within=10)
            if answer["event"] == "error":
                current.told.add(number)
        except TimeoutError:
            current.told.add(number)
        await asyncio.sleep(PAUSE)


async def one_round(sentinels: Any, apps: list[WebSuckets], alice: ClientConnection, kind: str, holder: list[Round]):
    current = holder[0] = Round(kind)
    old = sentinels.master_port()
    killed = None
    if kind == "failover":
        sentinels.sentinel().sentinel_failover(sentinels.service)
    else:
        killed = sentinels.server(old)
        killed.kill()
    named = asyncio.create_task(asyncio.to_thread(sentinels.wait_for_new_master, old, 30.0))

    def done() -> bool:
        if not named.done():
            return False
        where = ("127.0.0.1", named.result())
        return all(on_master(app) == where and app.backend.health.connected for app in apps)

    await probe(alice, current, done, within=60)
    await asyncio.sleep(3)  # what is still on its way arrives
    if killed is not None:
        killed.restart()  # back as the replica of the new master (the sentinels tell it)
    await asyncio.to_thread(replica_in_sync, sentinels)
    return current.summary()


def on_master(app: WebSuckets) -> tuple[str, int] | None:
    link = app.backend._link  # type: ignore[attr-defined]
    return link._connector.connected_to(link.client)  # type: ignore[no-any-return]


def replica_in_sync(sentinels: Any, within: float = 30.0) -> None:
    """Wait until the sentinels see the replica of the current master up (the next round can fail over to it)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        replicas = sentinels.sentinel().sentinel_slaves(sentinels.service)
        if any(r.get("master-link-status") == "ok" and "s_down" not in r.get("flags", "") for r in replicas):
            return
        time.sleep(0.1)
    raise SystemExit("the replica did not come back in sync")


async def measure(options: argparse.Namespace) -> list[dict[str, Any]]:
    sentinels = redis_servers().RedisSentinels()
    sentinels.start()
    records: list[dict[str, Any]] = []
    try:
        apps = [bench_app(sentinels.url()), bench_app(sentinels.url())]
        async with contextlib.AsyncExitStack() as stack:
            ports = []
            for app in apps:
                await stack.enter_async_context(app)
                server = await stack.enter_async_context(app.serve("127.0.0.1", 0))
                ports.append(server.sockets[0].getsockname()[1])
            alice = await stack.enter_async_context(connect(f"ws://127.0.0.1:{ports[0]}"))
            bob = await stack.enter_async_context(connect(f"ws://127.0.0.1:{ports[1]}"))
            await ask(bob, "join")
            holder = [Round("warm-up")]
            hearing = asyncio.create_task(hear(bob, holder))
            try:
                for kind, count in (("failover", options.failovers), ("kill", options.kills)):
                    for index in range(count):
                        record = await one_round(sentinels, apps, alice, kind, holder)
                        records.append(record)
                        print(f"  {kind} {index + 1}: {json.dumps(record)}", file=sys.stderr)
            finally:
                hearing.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await hearing
    finally:
        sentinels.stop()
    return records


def table(records: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| what happened | rounds | window p50 s | window max s | broadcasts | told failed "
        "| acknowledged, lost | of them outside the window |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {"failover": "SENTINEL FAILOVER", "kill": "master killed (SIGKILL)"}
    for kind, name in names.items():
        rows = [r for r in records if r["kind"] == kind]
        if not rows:
            continue
        windows = [r["window_s"] for r in rows]
        lines.append(
            f"| {name} | {len(rows)} | {statistics.median(windows):.2f} | {max(windows):.2f} "
            f"| {sum(r['broadcasts'] for r in rows):,} | {sum(r['told'] for r in rows)} "
            f"| {sum(r['acknowledged_lost'] for r in rows)} | {sum(r['lost_outside_window'] for r in rows)} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 failovers and 1 kill")
    parser.add_argument("--failovers", type=int)
    parser.add_argument("--kills", type=int)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    options = parser.parse_args(argv)
    options.failovers = options.failovers if options.failovers is not None else (2 if options.quick else 5)
    options.kills = options.kills if options.kills is not None else (1 if options.quick else 3)
    records = asyncio.run(measure(options))
    lost_outside = sum(r["lost_outside_window"] for r in records)
    lines = [
        "# Redis Sentinel failover: outage window and losses",
        "",
        machine(),
        "",
        f"Two apps on a master, a replica and three sentinels (down after 1 s); a broadcast to a room with "
        f"history every {PAUSE * 1000:.0f} ms after each answer; heartbeat 0.2 s, timeout 1 s.",
        "",
        *table(records),
        "",
        f"{'MET ' if lost_outside == 0 else 'MISS'} no acknowledged broadcast lost outside the outage window "
        f"({lost_outside} were)",
    ]
    text = "\n".join(lines)
    print(text)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "failover.md").write_text(text + "\n")
    (options.out / "failover.json").write_text(json.dumps(records, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
