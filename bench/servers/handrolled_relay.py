"""A hand-rolled cross-process relay on websockets and redis-py pub/sub: the reference for websuckets'
cross-process delivery in `bench/scale_out.py`.

What a team would write without a framework, and no more: each process subscribes to a channel
of its own; a client's process is kept in one Redis hash (client id -> process), looked up once
per receiver and cached; a send to a client of another process is one PUBLISH on that process's
channel (``<client id>\\n<frame>``), whose subscriber count says whether the process is there;
the receiving process writes the frame as it is. It speaks the protocol of `scale_client.py`
(``bench whoami``; ``send message`` answered ``message sent``, the receiver getting ``incoming
message``). Nothing of what websuckets adds is here: no validation beyond JSON, no rate limit,
no presence mirror, no supervision of the Redis connection.
"""

import argparse
import asyncio
import json
import os
import signal
import uuid

from redis.asyncio import Redis
from websockets.asyncio.server import ServerConnection, broadcast, serve

CLIENTS = "relay:clients"


def encode(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"))


class Relay:
    def __init__(self, redis: Redis, name: str) -> None:
        self.redis = redis
        self.name = name
        self.local: dict[str, ServerConnection] = {}
        self.owners: dict[str, str] = {}

    async def handle(self, socket: ServerConnection) -> None:
        client_id = uuid.uuid4().hex
        self.local[client_id] = socket
        await self.redis.hset(CLIENTS, client_id, self.name)
        try:
            async for message in socket:
                await self.command(socket, client_id, json.loads(message))
        finally:
            del self.local[client_id]
            await self.redis.hdel(CLIENTS, client_id)

    async def command(self, socket: ServerConnection, client_id: str, command: dict) -> None:
        if command["event"] == "bench whoami":
            await socket.send(encode({"event": "whoami", "payload": client_id}))
            return
        to, text = command["payload"]["to"], command["payload"]["text"]
        frame = encode({"event": "incoming message", "payload": {"author": client_id, "text": text}})
        receiver = self.local.get(to)
        if receiver is not None:
            await receiver.send(frame)
        elif not await self.publish(to, frame):
            await socket.send(encode({"event": "error", "payload": {"name": "no such client"}}))
            return
        await socket.send('{"event":"message sent"}')

    async def publish(self, to: str, frame: str) -> bool:
        owner = self.owners.get(to)
        if owner is None:
            owner = await self.redis.hget(CLIENTS, to)
            if owner is None:
                return False
            self.owners[to] = owner
        return bool(await self.redis.publish(f"relay:{owner}", f"{to}\n{frame}"))

    async def listen(self) -> None:
        async with self.redis.pubsub() as pubsub:
            await pubsub.subscribe(f"relay:{self.name}")
            async for message in pubsub.listen():
                if message["type"] != "message":
                    continue
                to, frame = message["data"].split("\n", 1)
                receiver = self.local.get(to)
                if receiver is not None:
                    broadcast([receiver], frame)


async def main(options: argparse.Namespace) -> None:
    redis = Redis.from_url(options.redis_url, decode_responses=True)
    relay = Relay(redis, f"{os.getpid()}-{options.port}")
    listener = asyncio.create_task(relay.listen())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with serve(relay.handle, "127.0.0.1", options.port, compression=None):
        await stop.wait()
    listener.cancel()
    await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--namespace", default="relay", help="ignored: the relay's keys are its own")
    asyncio.run(main(parser.parse_args()))
