"""websuckets on `RedisBackend`, for `bench/room_channels.py`: rooms joined on demand, and a burst of broadcasts.

``bench join {"room": R}`` joins the connection to R; ``bench blast {"room": R, "count": N}``
broadcasts N small messages to R (64 at a time, each awaited) and answers when Redis has taken
them all; ``bench say {"room": R, "text": T}`` broadcasts ``incoming message`` ``{"text": T}``
to R and answers ``message sent`` (`bench/topologies.py`'s closed loop, through
`scale_client.py --rooms`). ``--shared-channel`` publishes room broadcasts on the namespace's one channel
(``RedisBackend(room_channels=False)``, as websuckets 0.1 did): the reference. No rate limit,
like the other bench servers.
"""

import argparse
import asyncio
import signal

from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Session, WebSuckets
from websuckets.backends.redis import RedisBackend


class Room(BaseModel):
    room: str


class Say(BaseModel):
    room: str
    text: str


class Blast(BaseModel):
    room: str
    count: int


bench = CommandGroup("bench")


@bench.command("join")
async def join(socket: ServerConnection, model: Room) -> None:
    await Session.join(socket.id, model.room)
    await socket.send(ClientEvent("join"))


@bench.command("say")
async def say(socket: ServerConnection, model: Say) -> None:
    await Session.broadcast(ClientEvent("incoming message", {"text": model.text}), room=model.room)
    await socket.send(ClientEvent("message sent"))


@bench.command("blast")
async def blast(socket: ServerConnection, model: Blast) -> None:
    sent = 0
    while sent < model.count:
        batch = min(64, model.count - sent)
        await asyncio.gather(*(Session.broadcast(ClientEvent("m", sent + n), room=model.room) for n in range(batch)))
        sent += batch
    await socket.send(ClientEvent("blast"))


async def main(options: argparse.Namespace) -> None:
    backend = RedisBackend(options.redis_url, namespace=options.namespace, room_channels=not options.shared_channel)
    app = WebSuckets(backend=backend, rate_limit=None)
    app.include_command_group(bench)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with app, app.serve("127.0.0.1", options.port):
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--shared-channel", action="store_true")
    asyncio.run(main(parser.parse_args()))
