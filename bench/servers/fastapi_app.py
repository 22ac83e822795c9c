"""FastAPI's websocket endpoint on uvicorn (default asyncio loop), with the hand-rolled server's logic."""

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError


class Echo(BaseModel):
    nickname: str
    text: str
    n: int


app = FastAPI()
CONNECTIONS: set[WebSocket] = set()


async def echo(socket: WebSocket, payload: Any, message_id: Any) -> None:
    model = Echo.model_validate(payload)
    await socket.send_text(json.dumps({"event": "echo", "payload": model.model_dump(), "id": message_id}))


async def say(socket: WebSocket, payload: Any, message_id: Any) -> None:
    model = Echo.model_validate(payload)
    text = json.dumps({"event": "chat", "payload": model.model_dump()})
    for other in list(CONNECTIONS):
        if other is not socket:
            await other.send_text(text)


HANDLERS: dict[str, Callable[[WebSocket, Any, Any], Awaitable[None]]] = {"user echo": echo, "chat say": say}


async def error(socket: WebSocket, name: str, details: Any, event: Any = None, message_id: Any = None) -> None:
    payload = {"name": name, "details": details, "event": event, "id": message_id}
    await socket.send_text(json.dumps({"event": "error", "payload": payload}))


@app.websocket("/")
async def endpoint(socket: WebSocket) -> None:
    await socket.accept()
    CONNECTIONS.add(socket)
    try:
        while True:
            frame = await socket.receive_text()
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
    except WebSocketDisconnect:
        pass
    finally:
        CONNECTIONS.discard(socket)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(app, host="127.0.0.1", port=port, loop="asyncio", log_level="warning")
