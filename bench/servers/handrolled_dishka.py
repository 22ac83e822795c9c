"""The hand-rolled server plus dishka: a SESSION scope per connection, a REQUEST scope per message.

The handler takes one SESSION-scoped service (`Visitor`) and one REQUEST-scoped one (`Trace`).
"""

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from dishka import AsyncContainer, Scope, make_async_container
from pydantic import BaseModel, ValidationError
from services import BenchProvider, Trace, Visitor
from websockets.asyncio.server import ServerConnection, serve


class Echo(BaseModel):
    nickname: str
    text: str
    n: int


container = make_async_container(BenchProvider())


async def echo(socket: ServerConnection, payload: Any, message_id: Any, visitor: Visitor, trace: Trace) -> None:
    model = Echo.model_validate(payload)
    visitor.messages += 1
    trace.n = model.n
    await socket.send(json.dumps({"event": "echo", "payload": model.model_dump(), "id": message_id}))


Handler = Callable[[ServerConnection, Any, Any, Visitor, Trace], Awaitable[None]]
HANDLERS: dict[str, Handler] = {"user echo": echo}


async def error(socket: ServerConnection, name: str, details: Any, event: Any = None, message_id: Any = None) -> None:
    payload = {"name": name, "details": details, "event": event, "id": message_id}
    await socket.send(json.dumps({"event": "error", "payload": payload}))


async def handle_message(socket: ServerConnection, session: AsyncContainer, frame: str | bytes) -> None:
    try:
        data = json.loads(frame)
        event, message_id = data["event"], data.get("id")
    except (ValueError, TypeError, KeyError) as exc:
        await error(socket, "invalid_command", str(exc))
        return
    handle = HANDLERS.get(event)
    if handle is None:
        await error(socket, "unknown_command", f"no command is named {event!r}", event, message_id)
        return
    async with session() as request:
        try:
            visitor, trace = await request.get(Visitor), await request.get(Trace)
            await handle(socket, data.get("payload"), message_id, visitor, trace)
        except ValidationError as exc:
            details = exc.errors(include_url=False, include_input=False, include_context=False)
            await error(socket, "validation_error", details, event, message_id)


async def handler(socket: ServerConnection) -> None:
    async with container(scope=Scope.SESSION) as session:
        async for frame in socket:
            await handle_message(socket, session, frame)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
