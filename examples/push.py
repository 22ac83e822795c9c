"""Events the server sends on its own: the time every second, and news from a queue.

Run it with ``python examples/push.py`` and listen with ``python -m websockets ws://localhost:9000``:
a ``tick`` arrives every second. Post news from any client, and every client gets it::

    {"event": "news post", "payload": {"text": "the server pushes this to everyone"}}
"""

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Context, Session, WebSuckets
from websuckets.exc import BackendUnavailable

logger = logging.getLogger("push")

TICK_SECONDS = 1.0
news: asyncio.Queue[str] = asyncio.Queue()
"""What to tell every client; anything in the program may put here (a thread too, with
``loop.call_soon_threadsafe(news.put_nowait, text)``)."""


async def tick() -> None:
    """Every ``TICK_SECONDS``, send the time to every connected client."""
    while True:
        await asyncio.sleep(TICK_SECONDS)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            await Session.broadcast(ClientEvent("tick", {"time": now}))
        except BackendUnavailable:  # a shared backend out of reach: say so, and try again next time
            logger.warning("tick at %s not sent: the backend is unavailable", now)


async def publish() -> None:
    """Send each piece of news from the queue to every connected client, in order."""
    while True:
        text = await news.get()
        try:
            await Session.broadcast(ClientEvent("news", {"text": text}))
        except BackendUnavailable:
            logger.warning("news not sent: the backend is unavailable")


@asynccontextmanager
async def background_tasks() -> AsyncIterator[None]:
    """Run `tick` and `publish` inside the block; enter it once the app has started."""
    async with asyncio.TaskGroup() as tasks:
        running = [tasks.create_task(tick()), tasks.create_task(publish())]
        try:
            yield
        finally:
            for task in running:
                task.cancel()


class Post(BaseModel):
    text: str = Field(min_length=1, max_length=500)


group = CommandGroup("news")


@group.command("post")
async def post(socket: ServerConnection, model: Post, ctx: Context) -> None:
    await news.put(model.text)  # a stand-in for any producer: a database listener, a webhook, a thread
    await ctx.reply("posted")


app = WebSuckets()
app.include_command_group(group)


async def main(host: str, port: int) -> None:
    """Serve until Ctrl+C or SIGTERM, with the background tasks running while the app does."""
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    async with app, app.serve(host, port) as server:  # the app has started: Session reads it
        print(f"serving on ws://{host}:{server.sockets[0].getsockname()[1]} (press Ctrl+C to stop)", flush=True)
        async with background_tasks():
            await stop.wait()
        await app.shutdown(server)  # the tasks have stopped: nothing sends while connections close


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main("localhost", int(os.environ.get("PORT", "9000"))))
