"""A bot for the room chat (examples/rooms.py): it sits in a room and answers "!ping" and "!upper text".

Start the chat with ``python examples/rooms.py``, then the bot with ``python examples/bot.py``
(or ``python examples/bot.py ws://host:port``). It joins again by itself after every
reconnection: stop the chat and start it again to see it come back.
"""

import asyncio
import logging
import sys
from typing import Any

from websuckets.client import connect


def answer(text: str) -> str | None:
    """What the bot says to ``text``; ``None`` when it is not for the bot."""
    if text == "!ping":
        return "pong"
    if text.startswith("!upper "):
        return text.removeprefix("!upper ").upper()
    return None


async def run(url: str, room: str = "lobby", nick: str = "bot", **options: Any) -> None:
    """Serve ``room`` until cancelled; ``options`` go to `websuckets.client.Client`."""
    async with connect(url, **options) as client:
        async for event in client:
            if event.event == "open":  # the first connection, and every reconnection
                await client.request("room join", {"room": room, "nick": nick})
            elif event.event == "said" and event.payload["room"] == room:
                reply = answer(event.payload["text"])
                if reply is not None:
                    await client.send("room say", {"room": room, "text": reply})


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)  # the client logs its connections and reconnections
    asyncio.run(run(sys.argv[1] if len(sys.argv) > 1 else "ws://localhost:9000"))
