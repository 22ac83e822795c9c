"""Streaming replies: one command, many events. A search that sends each hit as it finds it.

Run it with ``python examples/streams.py``, then stream from the Python client::

    async with connect("ws://localhost:9000") as client:
        async for hit in client.stream("books search", {"text": "python"}):
            print(hit.payload)

or by hand (``python -m websockets ws://localhost:9000``)::

    {"event": "books search", "payload": {"text": "python"}, "id": 1}
    {"event": "websuckets cancel", "id": 1}
"""

import asyncio
import logging
import os
from collections.abc import AsyncIterator

from dishka import FromDishka, Provider, Scope, make_async_container, provide
from pydantic import BaseModel, Field
from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, WebSuckets
from websuckets.di import WebSucketsProvider

logger = logging.getLogger("streams")

BOOKS = [
    "Python in a Nutshell",
    "Fluent Python",
    "Using Asyncio in Python",
    "Architecture Patterns with Python",
    "High Performance Python",
    "Serious Python",
    "The Hitchhiker's Guide to Python",
]
DELAY = 0.2
"""Seconds to find each hit: a stand-in for a slow index, a database cursor, a model's tokens."""


class Cursor:
    """A resource held while a search runs: opened for the stream, closed when it ends, however it ends."""

    def __init__(self) -> None:
        self.open = True

    async def matches(self, text: str) -> AsyncIterator[str]:
        for title in BOOKS:
            await asyncio.sleep(DELAY)
            if text.lower() in title.lower():
                yield title


class Services(Provider):
    @provide(scope=Scope.REQUEST)  # one a stream: it lives until the stream ends
    async def cursor(self) -> AsyncIterator[Cursor]:
        cursor = Cursor()
        yield cursor
        cursor.open = False
        logger.info("cursor closed")


class Search(BaseModel):
    text: str = Field(min_length=1, max_length=100)


class Hit(BaseModel):
    title: str
    rank: int


group = CommandGroup("books")


@group.command("search")
async def search(socket: ServerConnection, query: Search, cursor: FromDishka[Cursor]) -> AsyncIterator[Hit]:
    rank = 0
    try:
        async for title in cursor.matches(query.text):
            rank += 1
            yield Hit(title=title, rank=rank)  # sent at once, as {"event": "books search", "payload": {...}, "id": 1}
    finally:  # runs when the stream ends, fails, is cancelled, or its client leaves
        logger.info("search %r stopped after %d hits", query.text, rank)


app = WebSuckets(container=make_async_container(Services(), WebSucketsProvider()), max_streams=4)
app.include_command_group(group)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(app("localhost", int(os.environ.get("PORT", "9000"))))
