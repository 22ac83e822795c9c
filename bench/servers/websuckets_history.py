"""Rooms with and without history, for the resume latency of `bench/history.py`.

Rooms named ``history:*`` keep their last ``--size`` messages; the others keep none. Commands:

- ``room join`` ``{"room": ...}``: the app's own join (``Session.join``), answered with
  ``joined`` once done; in a history room the client has its ``websuckets position`` by then;
- ``bench fill`` ``{"room": ..., "count": n}``: broadcasts ``n`` ``said`` events to the room, one
  after the other, and answers ``filled`` with the position of the first and of the last.

``--backend redis --redis-url URL`` runs it on `RedisBackend`, ``memory`` (the default) on
`MemoryBackend`. ``--profile FILE`` writes a cProfile of the whole run to FILE when it stops.
"""

import argparse
import asyncio
import contextlib
import cProfile
import signal

from pydantic import BaseModel, Field
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, History, Session, WebSuckets
from websuckets.backends.base import Backend
from websuckets.backends.memory import MemoryBackend


class Room(BaseModel):
    room: str


class Fill(BaseModel):
    room: str
    count: int = Field(ge=1)


rooms = CommandGroup("room")
bench = CommandGroup("bench")


@rooms.command("join")
async def join(socket: ServerConnection, model: Room) -> None:
    await Session.join(socket.id, model.room)
    await socket.send(ClientEvent("joined", model.room))


@bench.command("fill")
async def fill(socket: ServerConnection, model: Fill) -> None:
    first = last = None
    for n in range(model.count):
        event = ClientEvent("said", {"nickname": "alice", "text": "hello, world", "n": n})
        last = await Session.broadcast(event, room=model.room)
        first = first or last
    await socket.send(ClientEvent("filled", {"first": first, "last": last}))


def create_app(backend: Backend, size: int) -> WebSuckets:
    app = WebSuckets(backend=backend, rate_limit=None, history={"history:*": History(size=size)})
    app.include_command_group(rooms)
    app.include_command_group(bench)
    return app


async def main(port: int, backend_name: str, redis_url: str, size: int) -> None:
    if backend_name == "redis":
        from websuckets.backends.redis import RedisBackend

        backend: Backend = RedisBackend(redis_url, namespace=f"bench-history-{port}")
    else:
        backend = MemoryBackend()
    app = create_app(backend, size)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with app, app.serve("127.0.0.1", port):
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", choices=["memory", "redis"], default="memory")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--size", type=int, default=2000, help="messages each history room keeps")
    parser.add_argument("--profile", help="write a cProfile of the run to this file on SIGTERM")
    arguments = parser.parse_args()
    profile = cProfile.Profile() if arguments.profile else contextlib.nullcontext()
    with profile:
        asyncio.run(main(arguments.port, arguments.backend, arguments.redis_url, arguments.size))
    if isinstance(profile, cProfile.Profile):
        profile.dump_stats(arguments.profile)
