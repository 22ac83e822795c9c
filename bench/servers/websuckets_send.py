"""The documentation's "send message" app, unchanged, on a chosen backend, with a few bench commands.

The app is ``examples/docs/send_message.py`` itself (``Session.online[to].socket.send(...)``),
loaded from its file; only its backend is replaced, as ``app.backend = RedisBackend(...)``.
A ``bench`` group adds what the runner (`bench/scale_out.py`) needs to see inside:

- ``bench whoami``: answers ``whoami`` with this connection's id;
- ``bench stats``: answers ``stats`` with the clients this process holds and mirrors, and the
  backend's health;
- ``bench memory``: answers ``memory`` after a full garbage collection, with the traced Python
  memory (``--tracemalloc`` only);
- ``bench seen``: answers ``seen`` with ``{client id: perf_counter_ns}``, the moment each client
  entered ``Session.online`` on this process (``--stamp`` only: the stamps cost memory).
"""

import argparse
import asyncio
import gc
import importlib.util
import logging
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Session, WebSuckets
from websuckets.backends.base import Backend
from websuckets.backends.memory import MemoryBackend
from websuckets.backends.redis import RedisBackend
from websuckets.presence import Presence
from websuckets.remote import RemoteUser
from websuckets.session import User

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "docs" / "send_message.py"
STAMPS: dict[str, int] = {}


def load_app() -> WebSuckets:
    spec = importlib.util.spec_from_file_location("send_message", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    app: WebSuckets = module.app
    return app


class StampedPresence(Presence):
    """A `Presence` that notes when each client first entered ``Session.online`` (local or mirrored)."""

    def add(self, user: User) -> None:
        STAMPS.setdefault(user.client_id.hex, time.perf_counter_ns())
        super().add(user)


bench = CommandGroup("bench")


@bench.command("whoami")
async def whoami(socket: ServerConnection) -> None:
    await socket.send(ClientEvent("whoami", str(socket.id)))


@bench.command("stats")
async def stats(socket: ServerConnection) -> None:
    users = Session.online.values()
    remote = sum(isinstance(user, RemoteUser) for user in users)
    health = APP.backend.health
    figures: dict[str, Any] = {
        "local": len(users) - remote,
        "remote": remote,
        "connected": health.connected,
        "reconnects": health.reconnects,
    }
    await socket.send(ClientEvent("stats", figures))


@bench.command("memory")
async def memory(socket: ServerConnection) -> None:
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
    await socket.send(ClientEvent("memory", {"traced": traced}))


@bench.command("seen")
async def seen(socket: ServerConnection) -> None:
    await socket.send(ClientEvent("seen", STAMPS))


APP = load_app()


async def main(arguments: argparse.Namespace) -> None:
    logging.basicConfig(format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("websuckets.redis").setLevel(arguments.redis_log_level)
    if arguments.tracemalloc:
        tracemalloc.start()
    backend: Backend
    if arguments.backend == "redis":
        backend = RedisBackend(arguments.redis_url, namespace=arguments.namespace)
    else:
        backend = MemoryBackend()
    if arguments.stamp:
        backend.presence = StampedPresence()  # both backends keep their index as .presence
    APP.backend = backend
    APP.rate_limit = None  # as every bench server: the load generators send faster than 100 commands/s
    APP.include_command_group(bench)
    async with APP, APP.serve("127.0.0.1", arguments.port) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", choices=["memory", "redis"], default="redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--namespace", default="bench-send")
    parser.add_argument("--stamp", action="store_true", help="note when each client entered Session.online")
    parser.add_argument("--tracemalloc", action="store_true", help="trace Python allocations (bench memory)")
    parser.add_argument("--redis-log-level", default="WARNING", help="of RedisBackend's logger, to the log file")
    asyncio.run(main(parser.parse_args()))
