import asyncio

from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, WebSuckets

app = WebSuckets()
group = CommandGroup()


@group.command("say ok")
async def say_ok(socket: ServerConnection) -> None:
    await socket.send("ok")


app.include_command_group(group)

if __name__ == "__main__":
    asyncio.run(app("localhost", 9000))
