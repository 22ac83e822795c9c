import asyncio
from uuid import UUID

from pydantic import BaseModel
from websockets import WebSocketServerProtocol

from websuckets import ClientEvent, CommandGroup, WebSuckets
from websuckets.exc import InternalError
from websuckets.session import Session

app = WebSuckets()
group = CommandGroup()


class MessageModel(BaseModel):
    to: UUID
    text: str


@group.command("send message", protected=False)
async def send_message(socket: WebSocketServerProtocol, model: MessageModel):
    my_socket_id = socket.id  # this client's id
    him_socket_id = model.to  # the receiving client's id
    if him_socket_id not in Session.online:  # receiver not connected
        raise InternalError("такой клиент не подключен")  # sent to the client as an error
    him_socket = Session.online[him_socket_id].socket
    author_client_event = ClientEvent(event="message sent")
    receiver_client_event = ClientEvent(
        event="incoming message", payload=dict(author=str(my_socket_id), text=model.text)
    )
    await socket.send(author_client_event)
    await him_socket.send(receiver_client_event)


app.include_command_group(group)

if __name__ == "__main__":
    asyncio.run(app("localhost", 9000))
