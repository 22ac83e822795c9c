"""``system ping``: is the app up, and what time is it there."""

from dishka import FromDishka
from websockets.asyncio.server import ServerConnection
from websuckets import CommandGroup, Context

from ..models import Pong
from ..services import Clock

system = CommandGroup("system")


@system.command("ping")
async def ping(
    socket: ServerConnection,
    ctx: Context,
    clock: FromDishka[Clock],
) -> None:
    """Reply ``pong`` with the server's time."""
    await ctx.reply("pong", Pong(time=clock.now()))
