"""A room chat: join rooms under a nickname, say something to a room, leave it.

Run it with ``python examples/rooms.py`` and talk to it with ``python -m websockets ws://localhost:9000``::

    {"event": "room join", "payload": {"room": "lobby", "nick": "alice"}, "id": 1}
    {"event": "room say", "payload": {"room": "lobby", "text": "hi"}, "id": 2}
    {"event": "room leave", "payload": {"room": "lobby"}, "id": 3}

With ``REDIS_URL`` set (``REDIS_URL=redis://localhost:6379/0``, the ``redis`` extra installed),
every process started that way shares the same rooms: start a second one with ``PORT=9001``.
"""

import asyncio
import os

from pydantic import BaseModel, Field
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Context, Session, User, WebSuckets
from websuckets.backends import Backend
from websuckets.exc import InternalError


class Join(BaseModel):
    room: str = Field(min_length=1, max_length=64)
    nick: str = Field(min_length=1, max_length=32)


class Leave(BaseModel):
    room: str


class Say(BaseModel):
    room: str
    text: str = Field(min_length=1, max_length=2000)


rooms = CommandGroup("room")


@rooms.command("join")
async def join(socket: ServerConnection, model: Join, user: User, ctx: Context) -> None:
    user.nick = model.nick  # a JSON value: every process reads it on this user
    await Session.join(socket.id, model.room)
    joined = ClientEvent("joined", {"room": model.room, "nick": model.nick})
    await Session.broadcast(joined, room=model.room, exclude=socket.id)
    members = sorted(member.nick for member in Session.room(model.room).values())
    await ctx.reply("room members", {"room": model.room, "members": members})


@rooms.command("say")
async def say(socket: ServerConnection, model: Say, user: User, ctx: Context) -> None:
    if model.room not in user.rooms:
        raise InternalError("not_in_room", f"join {model.room!r} first")
    said = ClientEvent("said", {"room": model.room, "nick": user.nick, "text": model.text})
    await Session.broadcast(said, room=model.room, exclude=socket.id)
    await ctx.reply("sent")


@rooms.command("leave")
async def leave(socket: ServerConnection, model: Leave, user: User, ctx: Context) -> None:
    if model.room not in user.rooms:
        raise InternalError("not_in_room", f"you are not in {model.room!r}")
    await Session.leave(socket.id, model.room)
    await Session.broadcast(ClientEvent("left", {"room": model.room, "nick": user.nick}), room=model.room)
    await ctx.reply("left", {"room": model.room})


async def say_goodbye(user: User) -> None:
    """A disconnect hook: the client is still in its rooms here, and leaves them all afterwards."""
    for room in user.rooms:
        left = ClientEvent("left", {"room": room, "nick": user.nick})
        await Session.broadcast(left, room=room, exclude=user.client_id)


def shared_backend() -> Backend | None:
    """`RedisBackend` on ``REDIS_URL`` when it is set; otherwise the default, one process's `MemoryBackend`."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return None
    from websuckets.backends.redis import RedisBackend  # needs the redis extra

    return RedisBackend(url)


app = WebSuckets(backend=shared_backend())
app.include_command_group(rooms)
app.on_disconnect(say_goodbye)

if __name__ == "__main__":
    asyncio.run(app("localhost", int(os.environ.get("PORT", "9000"))))
