"""An app with every instrument on, for tests that run it in processes of its own."""

from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, Context, WebSuckets
from websuckets.health import Health
from websuckets.metrics import Metrics

app = WebSuckets()
group = CommandGroup("user")


class Name(BaseModel):
    name: str


@group.command("hello")
async def hello(socket: ServerConnection, model: Name, ctx: Context) -> None:
    await ctx.reply("hi", model.name)


app.include_command_group(group)
app.add_instrument(Metrics(sync_interval=0.1))
app.add_instrument(Health())
