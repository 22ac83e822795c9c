import asyncio

from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, WebSuckets

app = WebSuckets()
group = CommandGroup("user")


class Hello(BaseModel):
    nickname: str


@group.command("hello")
async def hello(socket: ServerConnection, model: Hello) -> None:
    await socket.send(ClientEvent("greeting", f"hello, {model.nickname}"))


app.include_command_group(group)

if __name__ == "__main__":
    asyncio.run(app("localhost", 9000))
