"""Rooms with and without history, for the resume latency of `bench/history.py`.

Rooms named ``history:*`` keep their last ``--size`` messages; the others keep none. Commands:

- ``room join`` ``{"room": ...}``: the app's own join (``Session.join``), answered with
  ``joined`` once done; in a history room the client has its ``websuckets position`` by then;
- ``bench fill`` ``{"room": ..., "count": n}``: broadcasts ``n`` ``said`` events to the room, one
  after the other, and answers ``filled`` with the position of the first and of the last.

``--backend redis --redis-url URL`` runs it on `RedisBackend`, ``memory`` (the default) on
`MemoryBackend`. ``--profile FILE`` writes a cProfile of the whole run to FILE when it stops.
"""

from _serving import serve, server_options
from pydantic import BaseModel, Field
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, History, Session, WebSuckets
from websuckets.backends.base import Backend


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


if __name__ == "__main__":
    parser = server_options(__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000, help="messages each history room keeps")
    options = parser.parse_args()
    serve(options, lambda backend: create_app(backend, options.size), namespace="bench-history")
