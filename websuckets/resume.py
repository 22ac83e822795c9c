"""The built-in ``websuckets resume`` command: a client that reconnected asks for what it missed.

::

    {"event": "websuckets resume", "payload": {"rooms": {"lobby": {"epoch": "9f3c…", "offset": 41}}}, "id": 7}

For each history room the client is a member of, the missed messages and its position
(``websuckets position``) are sent at once. For a room it is not in yet (right after a
reconnect, before the app has joined it again), the position waits on the connection, and
the recovery happens when the app joins it (`Session.join`). The reply lists those:
``{"event": "websuckets resume", "payload": {"waiting": ["lobby"]}, "id": 7}``. Rooms
without history are ignored. The app registers the command only when it keeps history.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints
from websockets.asyncio.server import ServerConnection

from .context import Context
from .routing import CommandGroup
from .user import User
from .wire import MAX_ROOMS, RESUME_EVENT, Position

__all__ = [
    "MAX_ROOMS",
    "GapPayload",
    "PositionPayload",
    "ResumeReply",
    "ResumeRequest",
    "RoomPosition",
    "resume_commands",
]


class RoomPosition(BaseModel):
    """The last position a client saw in a room."""

    epoch: Annotated[str, StringConstraints(max_length=64)]
    offset: int = Field(ge=0)


class ResumeRequest(BaseModel):
    """The payload of ``websuckets resume``: the rooms to resume, each from its last position."""

    rooms: dict[Annotated[str, StringConstraints(min_length=1)], RoomPosition] = Field(max_length=MAX_ROOMS)


class ResumeReply(BaseModel):
    """The reply: the rooms whose recovery waits for the app to join the client to them."""

    waiting: list[str]


class PositionPayload(BaseModel):
    """``websuckets position``: where a member of a history room stands, and whether it recovered.

    ``recovered`` is ``None`` for a plain join, ``True`` when every missed message was sent
    just before, ``False`` when some were lost and none was replayed: reload the room's state.
    """

    room: str
    epoch: str
    offset: int
    recovered: bool | None


class GapPayload(BaseModel):
    """``websuckets gap``: messages of ``room`` were lost on their way; resume it from the last position."""

    room: str


def resume_commands() -> CommandGroup:
    """A group holding ``websuckets resume``, for one app."""
    group = CommandGroup("websuckets")
    group.command("resume", replies={RESUME_EVENT: ResumeReply})(resume)
    return group


async def resume(socket: ServerConnection, model: ResumeRequest, user: User, ctx: Context) -> None:
    sessions = ctx.connection.sessions
    backend = sessions.backend
    waiting = []
    for room, at in model.rooms.items():
        if not backend.keeps_history(room):
            continue
        since = Position(at.epoch, at.offset)
        if room in user.rooms:
            await backend.recover(user, room, since)
        else:
            sessions.resume_on_join(user, room, since)
            waiting.append(room)
    await ctx.reply(RESUME_EVENT, {"waiting": waiting})
