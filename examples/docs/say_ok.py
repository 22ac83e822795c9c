import asyncio

from websockets import WebSocketServerProtocol

from websuckets import CommandGroup, WebSuckets

app = WebSuckets()
group = CommandGroup()


@group.command("say ok", protected=False)
async def create(socket: WebSocketServerProtocol):
    await socket.send("ok")


app.include_command_group(group)

if __name__ == "__main__":
    asyncio.run(app("localhost", 9000))
