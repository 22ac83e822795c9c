"""Redis Cluster: the client, the sharded subscriber, and which node serves what.

A ``redis+cluster://`` URL (`address`) names seed nodes; clients are redis-py's asyncio
``RedisCluster``, which asks the seeds for the slots' owners and follows MOVED and ASK
redirections by itself. Channels are *sharded* (SSUBSCRIBE, SPUBLISH, Redis 7+): a message
is published on the node that serves the channel's slot and heard by the subscribers of that
node alone, so a room's broadcasts cost only its slot's node, not the whole cluster bus.
redis-py's ``ClusterPubSub`` holds a connection to each node that serves a channel heard; the
link reads it through `ShardedSubscriber`, whose messages look like plain pub/sub's.

When a slot moves, or its master fails over, Redis tells the subscribers of its channels with
a ``sunsubscribe`` they did not ask for: the link then reconnects and subscribes again, on the
new owners (`moved_away`). redis-py before 8.2 has no asyncio ``ClusterPubSub``: a cluster URL
is refused at start-up (`check_redis_py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

REDIS_PY_NEEDED = (8, 2)
"""The oldest redis-py whose asyncio ``RedisCluster`` has sharded pub/sub (``ClusterPubSub.ssubscribe``)."""

POLL = 0.05
"""Seconds a node's reader waits on its connection at a time; a SSUBSCRIBE on it waits that long at most."""

_KINDS = {"smessage": "message", "ssubscribe": "subscribe", "sunsubscribe": "unsubscribe"}
"""Sharded pub/sub's message types, as plain pub/sub names them."""


def redis_py_version() -> tuple[int, ...]:
    return tuple(int(part) for part in redis.__version__.split(".")[:2] if part.isdigit())


def check_redis_py() -> str | None:
    """Why this redis-py cannot talk to a Redis Cluster, or ``None`` if it can."""
    if redis_py_version() >= REDIS_PY_NEEDED:
        return None
    needed = ".".join(map(str, REDIS_PY_NEEDED))
    return f"Redis Cluster needs redis-py {needed} or newer (sharded pub/sub), this is redis-py {redis.__version__}"


def cluster_client(seeds: Iterable[tuple[str, int]], options: dict[str, Any]) -> RedisCluster:
    """A ``RedisCluster`` that asks ``seeds`` for the cluster's layout; ``options`` are every node's."""
    return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in seeds], **options)


class ShardedSubscriber:
    """redis-py's ``ClusterPubSub`` as the link reads a plain ``PubSub``: ``subscribe`` is SSUBSCRIBE,
    and messages come with plain pub/sub's types (``message``, ``subscribe``, ``unsubscribe``).

    Each node it holds a connection to is read by a task of its own (`POLL` seconds a read, so that a
    SSUBSCRIBE on that connection waits that long at most), into one queue: a message is handed on as
    soon as it arrives, whichever node it comes from. ``ClusterPubSub.get_sharded_message`` alone reads
    the nodes in turn, each for a share of the timeout, which delays a message by up to that share. A
    node's failure is raised to the reader (the link rebuilds), not hidden behind the others.
    """

    def __init__(self, client: RedisCluster) -> None:
        self.client = client
        self.pubsub = client.pubsub()
        self._heard: asyncio.Queue[dict[str, Any] | Exception] = asyncio.Queue()
        self._readers: dict[str, asyncio.Task[None]] = {}

    async def subscribe(self, *channels: str) -> None:
        await self.pubsub.ssubscribe(*channels)
        self._read_every_node()

    async def unsubscribe(self, *channels: str) -> None:
        await self.pubsub.sunsubscribe(*channels)

    async def get_message(self, timeout: float) -> dict[str, Any] | None:  # noqa: ASYNC109  # PubSub's signature
        self._read_every_node()
        try:
            async with asyncio.timeout(timeout):
                heard = await self._heard.get()
        except TimeoutError:
            return None
        if isinstance(heard, Exception):
            raise heard
        return {**heard, "type": _KINDS.get(heard["type"], heard["type"])}

    def _read_every_node(self) -> None:
        """A reader for each node subscribed to, and none for a node no longer."""
        nodes = self.pubsub.node_pubsub_mapping
        for name in [name for name in self._readers if name not in nodes]:
            self._readers.pop(name).cancel()
        for name in nodes:
            reader = self._readers.get(name)
            if reader is None or reader.done():  # done: its node was dropped, then subscribed to again
                node = self.client.get_node(node_name=name)
                if node is not None:
                    self._readers[name] = asyncio.create_task(self._read(node), name=f"sharded pub/sub of {name}")

    async def _read(self, node: ClusterNode) -> None:
        """Read ``node``'s connection while it is subscribed to; a failure goes into the queue."""
        loop = asyncio.get_running_loop()
        try:
            while node.name in self.pubsub.node_pubsub_mapping:
                started = loop.time()
                message = await self.pubsub.get_sharded_message(target_node=node, timeout=POLL)
                if message is not None:
                    self._heard.put_nowait(message)
                elif loop.time() - started < POLL / 2:  # nothing waited on: not connected (yet)
                    await asyncio.sleep(POLL)
        except Exception as exc:
            self._heard.put_nowait(exc)

    async def aclose(self) -> None:
        """Stop the readers, close the pubsub, then the client: the client even when a cancellation (the
        link's, repeated while it stops) cuts the first steps short, so that none of its connections is left."""
        readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            reader.cancel()
        try:
            await asyncio.gather(*readers, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()
        finally:
            await self.client.aclose()


async def node_run_id(client: RedisCluster, key: str) -> str:
    """The ``run_id`` of the master that serves ``key``'s slot (a failover or a restart changes it)."""
    node = client.get_node_from_key(key)
    info = await client.info("server", target_nodes=node)
    return str(info["run_id"])
