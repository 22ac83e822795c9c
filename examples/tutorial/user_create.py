import asyncio

from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, WebSuckets

app = WebSuckets()
group = CommandGroup("user")


class NewUser(BaseModel):
    nickname: str
    password: str


@group.command("create")
async def create(socket: ServerConnection, new_user: NewUser) -> None:
    await socket.send(ClientEvent("user created", {"nickname": new_user.nickname}))


app.include_command_group(group)

if __name__ == "__main__":
    asyncio.run(app("localhost", 9000))
