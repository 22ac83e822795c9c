import asyncio

from pydantic import BaseModel
from websockets import WebSocketServerProtocol

from websuckets import CommandGroup, WebSuckets

app = WebSuckets()
group = CommandGroup("user")


class CreateModel(BaseModel):
    nickname: str
    password: str


@group.command("create", protected=False)
async def create(socket: WebSocketServerProtocol, model: CreateModel):
    await socket.send(model.model_dump_json())


app.include_command_group(group)

if __name__ == "__main__":
    asyncio.run(app("localhost", 9000))
