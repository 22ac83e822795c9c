"""python-socketio (ASGI) on uvicorn (default asyncio loop), with the hand-rolled server's logic.

Socket.IO routes by its own event names, so the client sends ``42["user echo",{"payload":
...,"id":n}]`` and gets ``42["echo",{"payload":...,"id":n}]``: Engine.IO and Socket.IO
framing on top of the same JSON, and a Socket.IO handshake after the WebSocket one.
"""

import argparse
from typing import Any

import socketio
import uvicorn
from pydantic import BaseModel, ValidationError


class Echo(BaseModel):
    nickname: str
    text: str
    n: int


sio = socketio.AsyncServer(async_mode="asgi")
app = socketio.ASGIApp(sio)


async def validation_error(sid: str, exc: ValidationError, event: str, message_id: Any) -> None:
    details = exc.errors(include_url=False, include_input=False, include_context=False)
    payload = {"name": "validation_error", "details": details, "event": event, "id": message_id}
    await sio.emit("error", {"payload": payload}, to=sid)


@sio.on("user echo")
async def echo(sid: str, data: dict[str, Any]) -> None:
    try:
        model = Echo.model_validate(data.get("payload"))
    except ValidationError as exc:
        await validation_error(sid, exc, "user echo", data.get("id"))
        return
    await sio.emit("echo", {"payload": model.model_dump(), "id": data.get("id")}, to=sid)


@sio.on("chat say")
async def say(sid: str, data: dict[str, Any]) -> None:
    try:
        model = Echo.model_validate(data.get("payload"))
    except ValidationError as exc:
        await validation_error(sid, exc, "chat say", data.get("id"))
        return
    await sio.emit("chat", {"payload": model.model_dump()}, skip_sid=sid)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(app, host="127.0.0.1", port=port, loop="asyncio", log_level="warning")
