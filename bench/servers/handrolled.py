"""What a careful user writes by hand: websockets, json, a dict of handlers, a pydantic model.

``user echo`` answers ``echo`` to the sender; ``chat say`` sends ``chat`` to every other
connection. Invalid JSON, an unknown event or an invalid payload get an ``error`` event
shaped like websuckets' own, so the error path does the same work.
"""

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from websockets.asyncio.server import ServerConnection, serve


class Echo(BaseModel):
    nickname: str
    text: str
    n: int


CONNECTIONS: set[ServerConnection] = set()


async def echo(socket: ServerConnection, payload: Any, message_id: Any) -> None:
    model = Echo.model_validate(payload)
    await socket.send(json.dumps({"event": "echo", "payload": model.model_dump(), "id": message_id}))


async def say(socket: ServerConnection, payload: Any, message_id: Any) -> None:
    model = Echo.model_validate(payload)
    text = json.dumps({"event": "chat", "payload": model.model_dump()})
    for other in list(CONNECTIONS):
        if other is not socket:
            await other.send(text)


HANDLERS: dict[str, Callable[[ServerConnection, Any, Any], Awaitable[None]]] = {"user echo": echo, "chat say": say}


async def error(socket: ServerConnection, name: str, details: Any, event: Any = None, message_id: Any = None) -> None:
    payload = {"name": name, "details": details, "event": event, "id": message_id}
    await socket.send(json.dumps({"event": "error", "payload": payload}))


async def handler(socket: ServerConnection) -> None:
    CONNECTIONS.add(socket)
    try:
        async for frame in socket:
            try:
                data = json.loads(frame)
                event, message_id = data["event"], data.get("id")
            except (ValueError, TypeError, KeyError) as exc:
                await error(socket, "invalid_command", str(exc))
                continue
            handle = HANDLERS.get(event)
            if handle is None:
                await error(socket, "unknown_command", f"no command is named {event!r}", event, message_id)
                continue
            try:
                await handle(socket, data.get("payload"), message_id)
            except ValidationError as exc:
                details = exc.errors(include_url=False, include_input=False, include_context=False)
                await error(socket, "validation_error", details, event, message_id)
    finally:
        CONNECTIONS.discard(socket)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
