"""What an awaited Redis command costs through websuckets' link, against redis-py's own call.

    .venv/bin/python bench/redis_call.py              # 5 rounds of 3,000 awaited PUBLISHes each
    .venv/bin/python bench/redis_call.py --quick      # 3 rounds of 1,000

A direct send to a client of another process (``Session.online[to].socket.send``) awaits one
``PUBLISH`` through the process's ordered writer (`websuckets.backends.redis.writer`). This times
that awaited command, one at a time as one connection's handler makes them, on a redis-server of
its own on 127.0.0.1, against ``redis.asyncio.Redis.publish`` on the same server, in the same
process and event loop, the two alternated round by round. The figures are µs per command (the
round trip included); the overhead is the link's time over redis-py's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from scale_out import OwnRedis

from websuckets import WebSuckets
from websuckets.backends.redis import RedisBackend

Call = Callable[[], Awaitable[object]]


async def per_call(call: Call, count: int) -> float:
    """µs per awaited ``call``, ``count`` of them one after the other."""
    started = time.perf_counter()
    for _ in range(count):
        await call()
    return (time.perf_counter() - started) / count * 1e6


async def measure(url: str, rounds: int, count: int) -> dict[str, list[float]]:
    app = WebSuckets()
    app.backend = backend = RedisBackend(url, namespace="bench-call")
    link = backend._link  # the link is what is timed
    calls: dict[str, Call] = {}
    times: dict[str, list[float]] = {"redis-py publish": [], "websuckets link, awaited PUBLISH": []}
    async with app, Redis.from_url(url) as redis:
        calls["redis-py publish"] = lambda: redis.publish("bench-call", "x")
        calls["websuckets link, awaited PUBLISH"] = lambda: link.call(("PUBLISH", "bench-call", "x"), "bench")
        for call in calls.values():  # warm-up: connections made, code paths run once
            await per_call(call, count // 5)
        for _ in range(rounds):
            for name, call in calls.items():
                times[name].append(await per_call(call, count))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1,000")
    options = parser.parse_args()
    rounds, count = (3, 1000) if options.quick else (5, 3000)
    redis = OwnRedis()
    try:
        times = asyncio.run(measure(redis.url, rounds, count))
    finally:
        redis.stop()
    reference = statistics.median(times["redis-py publish"])
    print(f"| one awaited command at a time ({rounds} rounds of {count:,}) | µs median | µs per round | vs redis-py |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        middle = statistics.median(values)
        rounds_text = ", ".join(f"{value:.1f}" for value in values)
        print(f"| {name} | {middle:.1f} | {rounds_text} | {middle / reference:.2f}x |")
    overhead = statistics.median(times["websuckets link, awaited PUBLISH"]) - reference
    print(f"\nthe link's overhead per awaited command: {overhead:.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
