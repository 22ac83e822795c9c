"""MessagePack: the same commands and events in binary frames, with raw bytes. A thumbnail store.

Run it with ``python examples/msgpack.py`` (it needs ``pip install 'websuckets[msgpack]'``), then
talk to it from the Python client in MessagePack::

    async with connect("ws://localhost:9000", format="msgpack") as client:
        await client.request("thumbs join", {"room": "gallery"})
        reply = await client.request("thumbs upload", {"name": "dot.png", "image": b"\\x89PNG..."})
        print(reply.payload)  # {'name': 'dot.png', 'size': 8}

A JSON client (``connect("ws://localhost:9000")``, websuckets.js without a codec, or
``python -m websockets``) talks to the same app, in JSON text; its ``bytes`` go as base64.
"""

import asyncio
import logging
import os

from pydantic import BaseModel, ConfigDict, Field
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Context, Session, WebSuckets


class Thumbnail(BaseModel):
    # bytes as base64 for JSON clients; MessagePack clients send and get raw binaries
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    name: str = Field(min_length=1, max_length=100)
    image: bytes = Field(max_length=64 * 1024)


class Stored(BaseModel):
    name: str
    size: int


class Room(BaseModel):
    room: str


group = CommandGroup("thumbs")


@group.command("join")
async def join(socket: ServerConnection, model: Room, ctx: Context) -> None:
    await Session.join(socket.id, model.room)
    await ctx.reply("thumbs joined", model.room)


@group.command("upload")
async def upload(socket: ServerConnection, thumbnail: Thumbnail, ctx: Context) -> None:
    await ctx.reply("thumbs stored", Stored(name=thumbnail.name, size=len(thumbnail.image)))
    # one broadcast to a room of JSON and MessagePack members: encoded once for each format
    await Session.broadcast(ClientEvent("thumbs new", thumbnail), room="gallery", exclude=socket.id)


app = WebSuckets()
app.include_command_group(group)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(app("localhost", int(os.environ.get("PORT", "9000"))))
