"""An app for ``websuckets run --workers``: a RedisBackend at ``$REDIS_URL``; commands that say who serves them."""

import asyncio
import os
import time

from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, WebSuckets
from websuckets.backends.redis import RedisBackend

app = WebSuckets(backend=RedisBackend(os.environ["REDIS_URL"]), shutdown_timeout=5)
group = CommandGroup("job")


class Work(BaseModel):
    seconds: float


@group.command("pid")
async def pid(socket: ServerConnection) -> None:
    """The worker's process id."""
    await socket.send(ClientEvent("pid", os.getpid()))


@group.command("loop")
async def loop(socket: ServerConnection) -> None:
    """The module of the running event loop's class: asyncio or uvloop."""
    await socket.send(ClientEvent("loop", type(asyncio.get_running_loop()).__module__))


@group.command("run")
async def run(socket: ServerConnection, model: Work) -> None:
    await socket.send(ClientEvent("started", os.getpid()))
    await asyncio.sleep(model.seconds)
    await socket.send(ClientEvent("done", model.seconds))


@group.command("block")
async def block(socket: ServerConnection, model: Work) -> None:
    """Block the event loop, as a handler calling blocking code would."""
    await socket.send(ClientEvent("blocking", os.getpid()))
    time.sleep(model.seconds)  # noqa: ASYNC251  (the point: a stuck event loop)


app.include_command_group(group)
