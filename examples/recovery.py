"""A room chat that keeps each room's last 100 messages: a client that reconnects gets what it missed.

Run it with ``python examples/recovery.py`` and talk to it with ``python -m websockets ws://localhost:9000``::

    {"event": "room join", "payload": {"room": "lobby"}, "id": 1}
    {"event": "room say", "payload": {"room": "lobby", "text": "hi"}, "id": 2}

Every message of a room carries its position (``"epoch"``, ``"offset"``). A client that
reconnects sends the last position it saw *before* joining again; the join then replays what
it missed, followed by ``websuckets position`` with ``"recovered": true`` (or ``false``, with
nothing replayed, when the history no longer reaches back that far)::

    {"event": "websuckets resume", "payload": {"rooms": {"lobby": {"epoch": "…", "offset": 41}}}, "id": 3}
    {"event": "room join", "payload": {"room": "lobby"}, "id": 4}

With ``REDIS_URL`` set (the ``redis`` extra installed), every process started that way
shares the rooms and their history: start a second one with ``PORT=9001``, and a client
may resume on either.
"""

import asyncio
import os

from pydantic import BaseModel, Field
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Context, History, Session, User, WebSuckets
from websuckets.backends import Backend
from websuckets.exc import InternalError


class Join(BaseModel):
    room: str = Field(min_length=1, max_length=64)


class Say(BaseModel):
    room: str
    text: str = Field(min_length=1, max_length=2000)


rooms = CommandGroup("room")


@rooms.command("join")
async def join(socket: ServerConnection, model: Join, ctx: Context) -> None:
    await Session.join(socket.id, model.room)  # first sends what the client missed, and its position
    await ctx.reply("joined", {"room": model.room})


@rooms.command("say")
async def say(socket: ServerConnection, model: Say, user: User, ctx: Context) -> None:
    if model.room not in user.rooms:
        raise InternalError("not_in_room", f"join {model.room!r} first")
    said = ClientEvent("said", {"room": model.room, "text": model.text})
    position = await Session.broadcast(said, room=model.room)  # to everyone in the room, the sender too
    assert position is not None  # every room keeps history here
    await ctx.reply("sent", {"offset": position.offset})


def shared_backend() -> Backend | None:
    """`RedisBackend` on ``REDIS_URL`` when it is set; otherwise the default, one process's `MemoryBackend`."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return None
    from websuckets.backends.redis import RedisBackend  # needs the redis extra

    return RedisBackend(url)


app = WebSuckets(
    backend=shared_backend(),
    history={"*": History(size=100, ttl=15 * 60)},  # every room: its last 100 messages, up to 15 minutes old
)
app.include_command_group(rooms)

if __name__ == "__main__":
    asyncio.run(app("localhost", int(os.environ.get("PORT", "9000"))))
