import asyncio
from uuid import UUID

from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, InternalError, Session, WebSuckets

app = WebSuckets(welcome=True)  # tells every client its id when it connects
group = CommandGroup()


class Message(BaseModel):
    to: UUID
    text: str


@group.command("send message")
async def send_message(socket: ServerConnection, message: Message) -> None:
    receiver = Session.online.get(message.to)
    if receiver is None:
        raise InternalError("client_not_connected", {"to": str(message.to)})
    await receiver.socket.send(ClientEvent("incoming message", {"author": str(socket.id), "text": message.text}))
    await socket.send(ClientEvent("message sent"))


app.include_command_group(group)

if __name__ == "__main__":
    asyncio.run(app("localhost", 9000))
