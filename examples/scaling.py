"""An app on RedisBackend, every option spelled out, with a command that reports this process's health.

Start two of them on one Redis (the ``redis`` extra installed, ``redis-server`` on localhost)::

    REDIS_URL=redis://localhost:6379/0 python examples/scaling.py
    REDIS_URL=redis://localhost:6379/0 PORT=9001 python examples/scaling.py

then send ``{"event": "ops health", "id": 1}`` to either: ``online`` counts the clients of both.
"""

import asyncio
import os

from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, Context, Session, WebSuckets
from websuckets.backends.redis import RedisBackend
from websuckets.delivery import stats

backend = RedisBackend(
    os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
    namespace="websuckets",  # the prefix of every key and channel: apps sharing it share their clients
    timeout=2.0,  # seconds after which an operation that needs Redis fails with BackendUnavailable
    heartbeat=1.0,  # seconds between this process's heartbeats
    dead_after=5.0,  # seconds without a heartbeat after which a process is dead and its clients leave
)
app = WebSuckets(backend=backend)
ops = CommandGroup("ops")


@ops.command("health")
async def health(socket: ServerConnection, ctx: Context) -> None:
    """What a readiness probe or a metrics exporter wants to know about this process."""
    await ctx.reply(
        "health",
        {
            "worker": backend.worker_id,  # host:pid:random, chosen at start
            "backend": backend.health,  # connected, reconnects, failed_operations, dropped_deliveries, ...
            "slow_consumers_closed": stats.slow_consumers_closed,
            "online": len(Session.online),  # the clients of every process
        },
    )


app.include_command_group(ops)

if __name__ == "__main__":
    asyncio.run(app("localhost", int(os.environ.get("PORT", "9000"))))
