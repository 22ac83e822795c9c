"""An app for the command line's tests: a quick command, a slow one, and hooks that say they ran."""

import asyncio

from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, WebSuckets

app = WebSuckets(shutdown_timeout=5)
group = CommandGroup("job")


class Work(BaseModel):
    seconds: float


@group.command("ping")
async def ping(socket: ServerConnection) -> None:
    await socket.send(ClientEvent("pong"))


@group.command("run")
async def run(socket: ServerConnection, model: Work) -> None:
    await socket.send(ClientEvent("started"))
    await asyncio.sleep(model.seconds)
    await socket.send(ClientEvent("done", model.seconds))


@app.on_connect
async def greet(socket: ServerConnection) -> None:
    await socket.send(ClientEvent("welcome"))


app.include_command_group(group)
not_an_app = 42
