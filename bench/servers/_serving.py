"""What the websuckets bench servers with a choice of backend share: their options, the backend,
serving until SIGTERM, and an optional cProfile of the whole run."""

import argparse
import asyncio
import contextlib
import cProfile
import signal
from collections.abc import Callable

from websuckets import WebSuckets
from websuckets.backends.base import Backend
from websuckets.backends.memory import MemoryBackend


def server_options(description: str) -> argparse.ArgumentParser:
    """``--port``, ``--backend memory|redis``, ``--redis-url`` and ``--profile``; add the server's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", choices=["memory", "redis"], default="memory")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--profile", help="write a cProfile of the run to this file when the server stops")
    return parser


def make_backend(options: argparse.Namespace, namespace: str) -> Backend:
    if options.backend == "redis":
        from websuckets.backends.redis import RedisBackend

        return RedisBackend(options.redis_url, namespace=f"{namespace}-{options.port}")
    return MemoryBackend()


def serve(options: argparse.Namespace, create_app: Callable[[Backend], WebSuckets], namespace: str) -> None:
    """Serve the app on 127.0.0.1 until SIGTERM, profiled when ``--profile`` says so."""
    profile = cProfile.Profile() if options.profile else contextlib.nullcontext()
    with profile:
        asyncio.run(_serve_until_stopped(create_app(make_backend(options, namespace)), options.port))
    if isinstance(profile, cProfile.Profile):
        profile.dump_stats(options.profile)


async def _serve_until_stopped(app: WebSuckets, port: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with app, app.serve("127.0.0.1", port):
        await stop.wait()
