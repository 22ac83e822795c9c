"""python-socketio with its Redis manager (``AsyncRedisManager``), on uvicorn: the peer in
`bench/scale_out.py`'s cross-process delivery.

Each process is one ``socketio.AsyncServer`` whose client manager publishes every emit on
Redis; the process that holds the receiving ``sid`` delivers it. It speaks the protocol of
`scale_client.py` in Socket.IO framing (``--protocol socketio``): ``bench whoami`` answered
``whoami`` with the sid; ``send message`` ``{"to": sid, "text": ...}`` emitted to that sid as
``incoming message``, and answered ``message sent``.
"""

import argparse
from typing import Any

import socketio
import uvicorn

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--redis-url", required=True)
parser.add_argument("--namespace", default="socketio")
options, _ = parser.parse_known_args()

manager = socketio.AsyncRedisManager(options.redis_url, channel=options.namespace)
sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)
app = socketio.ASGIApp(sio)


@sio.on("bench whoami")
async def whoami(sid: str, *_: Any) -> None:
    await sio.emit("whoami", sid, to=sid)


@sio.on("send message")
async def send_message(sid: str, data: dict[str, Any]) -> None:
    await sio.emit("incoming message", {"author": sid, "text": data["text"]}, to=data["to"])
    await sio.emit("message sent", to=sid)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=options.port, loop="asyncio", log_level="warning")
