"""An app whose RedisBackend at ``$REDIS_URL`` gives up after ``$EXIT_AFTER`` seconds without Redis."""

import os

from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, WebSuckets
from websuckets.backends.redis import RedisBackend

backend = RedisBackend(os.environ["REDIS_URL"], heartbeat=0.2, timeout=0.5, exit_after=float(os.environ["EXIT_AFTER"]))
app = WebSuckets(backend=backend, shutdown_timeout=2)
group = CommandGroup("job")


@group.command("pid")
async def pid(socket: ServerConnection) -> None:
    """The serving process's id."""
    await socket.send(ClientEvent("pid", os.getpid()))


app.include_command_group(group)
