"""websuckets fan-out through a room: every connection joins ``lobby``; ``chat say`` broadcasts to it.

The same ``chat`` event reaches the same receivers as in the other fan-out servers (every
connection but the sender), through ``Session.broadcast(..., room="lobby", exclude=socket.id)``.
``--backend redis --redis-url URL`` runs it on `RedisBackend` (one process: what Redis adds
to a local fan-out); ``memory`` (the default) on `MemoryBackend`. ``--history SIZE`` makes
``lobby`` keep its last SIZE messages (``WebSuckets(history={"lobby": History(size=SIZE)})``):
every message is then numbered, kept, and reaches clients with its position. ``--profile FILE``
writes a cProfile of the whole run to FILE when the server stops (SIGTERM).
"""

import argparse
import asyncio
import contextlib
import cProfile
import signal

from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, History, Session, WebSuckets
from websuckets.backends.base import Backend
from websuckets.backends.memory import MemoryBackend


class Echo(BaseModel):
    nickname: str
    text: str
    n: int


chat = CommandGroup("chat")


@chat.command("say")
async def say(socket: ServerConnection, model: Echo) -> None:
    await Session.broadcast(ClientEvent("chat", model), room="lobby", exclude=socket.id)


async def join_lobby(socket: ServerConnection) -> None:
    await Session.join(socket.id, "lobby")


def create_app(backend: Backend, history: int = 0) -> WebSuckets:
    rooms = {"lobby": History(size=history)} if history else None
    app = WebSuckets(backend=backend, rate_limit=None, history=rooms)  # the other servers limit nothing either
    app.include_command_group(chat)
    app.on_connect(join_lobby)
    return app


async def main(port: int, backend_name: str, redis_url: str, history: int) -> None:
    if backend_name == "redis":
        from websuckets.backends.redis import RedisBackend

        backend: Backend = RedisBackend(redis_url, namespace=f"bench-rooms-{port}")
    else:
        backend = MemoryBackend()
    app = create_app(backend, history)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with app, app.serve("127.0.0.1", port):
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", choices=["memory", "redis"], default="memory")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--history", type=int, default=0, metavar="SIZE", help="lobby keeps its last SIZE messages")
    parser.add_argument("--profile", help="write a cProfile of the run to this file when the server stops")
    arguments = parser.parse_args()
    profile = cProfile.Profile() if arguments.profile else contextlib.nullcontext()
    with profile:
        asyncio.run(main(arguments.port, arguments.backend, arguments.redis_url, arguments.history))
    if isinstance(profile, cProfile.Profile):
        profile.dump_stats(arguments.profile)
