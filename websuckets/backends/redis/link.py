"""The link to Redis: one ordered writer, one supervised listener, the heartbeat.

It moves commands and messages and knows nothing of users, rooms or history. Every command of
the process goes through one writer, in the order it was made, pipelined. A listener on a
connection of its own hears the namespace's channel, the process's own, and the channels its
owner asks for while it wants them (`hear`, `stop_hearing`: a room's); supervised here
rather than trusted to redis-py's silent retries, it reconnects with backoff and each time
has its owner rebuild (``on_rebuild``) before any queued write goes out, then says so
(``on_connected``). Every message heard goes to one callback (``on_message``). The heartbeat
records that the process lives, reaps the processes that stopped, and probes that the
listener still hears its own channel; through Sentinel, it also asks the sentinels which
server is the master, and has the link rebuild on a new one. On a Redis Cluster the listener
reads each node of its (sharded) channels (`cluster.ShardedSubscriber`), and an unsubscription
it did not ask for (its slot moved, or its master failed over) has it rebuild on the new owners.

Anything that needs Redis and gets no answer within ``timeout`` seconds raises
`BackendUnavailable`; writes that nobody awaits are logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from redis.asyncio.client import PubSub

from ...exc import BackendUnavailable, InternalError
from ..base import BackendHealth
from .address import Client, Connector, UnusableURL, parse
from .cluster import ShardedSubscriber
from .codec import Ping
from .faults import FailureLog, reason, redacted, unavailable
from .keys import Keys
from .subscriptions import Subscriptions
from .watchdog import Watchdog
from .writer import Command, Writer

logger = logging.getLogger("websuckets.redis")

Subscriber = PubSub | ShardedSubscriber
"""The listener's connection(s): plain pub/sub, or a cluster's sharded one."""


class RedisLink:
    """The connections of one process to Redis, and the tasks that keep them.

    Args:
        on_rebuild: called on every (re)connection with the command connection, subscribed
            already and before anything queued is written: to put back what the other
            processes need to see. Raising fails the connection (it is tried again).
        on_connected: called once Redis answers again, after the messages heard meanwhile.
        on_message: called with each message heard, in order.
        exit_after: seconds Redis may stay unusable before the link gives up (`watchdog`); None: never.
    """

    def __init__(
        self,
        url: str,
        keys: Keys,
        *,
        timeout: float,
        heartbeat: float,
        dead_after: float,
        health: BackendHealth,
        on_rebuild: Callable[[Client], Awaitable[None]],
        on_connected: Callable[[], None],
        on_message: Callable[[str], None],
        exit_after: float | None = None,
    ) -> None:
        self.url = url
        self.keys = keys
        self.timeout = timeout
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        self.health = health
        self.on_rebuild = on_rebuild
        self.on_connected = on_connected
        self.on_message = on_message
        self.worker_id = ""
        self._client: Client | None = None
        self._connector: Connector | None = None
        self._rebuild = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._down_since = 0.0
        self._failures = FailureLog(logger)
        self._writer = Writer(timeout, health, self._failures, lambda: self.client, self._lost)
        self.watchdog = Watchdog(exit_after, redacted(url))
        self._subscriptions = Subscriptions()
        self._probe_heard_at = 0.0
        """When the listener last heard this process's probe (loop time); a cluster's deafness check."""

    @property
    def client(self) -> Client:
        """The command connection, for reads outside the writer's order."""
        assert self._client is not None
        return self._client

    @property
    def own_channel(self) -> str:
        """This process's channel: direct sends, fences and the heartbeat's probe."""
        return self.keys.worker_channel(self.worker_id)

    # lifecycle

    async def start(self, worker_id: str) -> None:
        """Connect as ``worker_id`` and start the writer, listener and heartbeat; `BackendUnavailable` naming
        the URL if Redis is away."""
        self.worker_id = worker_id
        self._rebuild = asyncio.Event()
        self._writer.reset()
        self._subscriptions = Subscriptions()
        self.watchdog = Watchdog(self.watchdog.after, self.watchdog.where)  # of this run's event loop
        try:
            self._connector = Connector(parse(self.url), self.timeout)
        except UnusableURL as exc:
            raise BackendUnavailable(str(exc)) from None
        self._client = self._new_client(socket_timeout=self.timeout)
        try:
            pubsub = await self._connect()
        except Exception as exc:
            await self._client.aclose()
            await self._connector.aclose()
            raise BackendUnavailable(f"cannot reach Redis at {redacted(self.url)}: {reason(exc)}") from exc
        self._tasks = [
            asyncio.create_task(self._writer.write_forever(), name="websuckets redis writer"),
            asyncio.create_task(self._listen_forever(pubsub), name="websuckets redis listener"),
            asyncio.create_task(self._heartbeat_forever(), name="websuckets redis heartbeat"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_ended)
        logger.info("connected to Redis at %s%s as %s", redacted(self.url), self._master(), self.worker_id)

    async def close(self, farewell: Command) -> None:
        """Run ``farewell`` and forget this process's heartbeat (if Redis answers), stop every task, disconnect."""
        tasks, self._tasks = self._tasks, []
        if self.health.connected and self._client is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timeout):
                    await self._client.execute_command(*farewell)
                    await self._client.zrem(self.keys.workers, self.worker_id)
        await _stop(tasks + list(self._background), self.timeout)
        self._failures.report(now=True)
        self.watchdog.stop()
        self.health.connected = False
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._connector is not None:
            await self._connector.aclose()

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task not in self._tasks:
            return  # closing
        logger.critical("%s stopped: %r; this process no longer shares state", task.get_name(), task.exception())

    def spawn(self, work: Coroutine[Any, Any, Any], what: str) -> None:
        """Run ``work`` in the background (a failure is logged), until it ends or the link closes."""

        async def run() -> None:
            try:
                await work
            except Exception:
                logger.exception("failed %s", what)

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # the channels heard on demand

    async def hear(self, channel: str, what: str) -> None:
        """Return once every message published on ``channel`` from now on reaches ``on_message``
        (after a reconnection too, until `stop_hearing`); `BackendUnavailable` if Redis does not
        confirm within ``timeout``."""
        waiter = self._subscriptions.waiter(channel)
        if waiter.done():
            return
        if not self.health.connected:
            raise unavailable(what)
        try:
            async with asyncio.timeout(self.timeout):
                await self._sync_subscriptions()
                await asyncio.shield(waiter)
        except TimeoutError:
            self._writer.fail([], f"no subscription to a channel within {self.timeout} s")
            raise unavailable(what) from None

    def stop_hearing(self, channel: str) -> None:
        """Stop hearing ``channel`` (Redis is told in the background)."""
        if self._subscriptions.discard(channel):
            self.spawn(self._sync_subscriptions(), "unsubscribing")

    async def _sync_subscriptions(self) -> None:
        try:
            await self._subscriptions.sync()
        except Exception as exc:  # the listener's connection: it reconnects, and subscribes to what is wanted
            self._lost(exc)

    # the writer: every command of this process, in order, pipelined (`writer`)

    def enqueue(self, args: Command, what: str, on_fail: Callable[[], None] | None = None) -> None:
        """Queue a write nobody waits for (`Writer.enqueue`)."""
        self._writer.enqueue(args, what, on_fail)

    async def call(self, args: Command, what: str) -> Any:
        """Run one command after every one queued before it (`Writer.call`)."""
        return await self._writer.call(args, what)

    async def wait_up(self, within: float) -> bool:
        """Whether Redis answers (connected, rebuilt) now or within ``within`` seconds."""
        return await self._writer.wait_up(within)

    def _lost(self, exc: BaseException) -> None:
        """The connection to Redis is broken: mark it, and have the listener rebuild everything."""
        self._writer.note_error(type(exc).__name__)
        self.watchdog.failing(reason(exc))
        self._writer.up.clear()
        if self.health.connected:
            self.health.connected = False
            self._down_since = time.monotonic()
            logger.error("lost Redis at %s: %s; reconnecting", redacted(self.url), reason(exc))
        self._rebuild.set()

    # the listener: supervised, rebuilt after any failure

    async def _listen_forever(self, pubsub: Subscriber) -> None:
        while True:
            try:
                await self._listen(pubsub)
            except Exception as exc:
                self._lost(exc)
            finally:
                self._subscriptions.detach()
                await _close(pubsub)
            pubsub = await self._reconnect()

    async def _listen(self, pubsub: Subscriber) -> None:
        loop = asyncio.get_running_loop()
        deaf_after = 3 * self.heartbeat + self.timeout
        last_heard = loop.time()
        while True:
            if self._rebuild.is_set():
                raise ConnectionError("rebuilding the connection")
            message = await pubsub.get_message(timeout=min(self.heartbeat, 1.0))
            if message is None:
                if loop.time() - last_heard > deaf_after:
                    raise ConnectionError(f"nothing heard for {deaf_after:.1f} s, not even this process's probe")
                continue
            last_heard = loop.time()
            if message["type"] == "message":
                self.on_message(message["data"])
            elif message["type"] == "subscribe":
                self._subscriptions.confirmed(message["channel"])
            elif message["type"] == "unsubscribe" and not self._subscriptions.unsubscribed(message["channel"]):
                raise ConnectionError(f"Redis unsubscribed this process from {message['channel']} (its slot moved)")

    async def _reconnect(self) -> Subscriber:
        assert self._connector is not None
        delay, longest = 0.05, self._connector.longest_backoff
        failed, last_said = 0, -math.inf
        while True:
            await asyncio.sleep(random.uniform(0, delay))
            try:
                pubsub = await self._connect()
            except Exception as exc:
                failed += 1
                self._writer.note_error(type(exc).__name__)
                self.watchdog.failing(reason(exc))
                if time.monotonic() - last_said >= 10:  # the first failure, then a line per 10 s at most
                    last_said = time.monotonic()
                    url, cause = redacted(self.url), reason(exc)
                    logger.warning("cannot reconnect to Redis at %s: %s (failed attempts: %d)", url, cause, failed)
                delay = min(delay * 2, longest)
                continue
            self.health.reconnects += 1
            logger.info("reconnected to Redis%s after %.1f s", self._master(), time.monotonic() - self._down_since)
            return pubsub

    async def _connect(self) -> Subscriber:
        """Subscribe, load the scripts, then have the owner rebuild; heard messages wait in the socket."""
        assert self._client is not None
        assert self._connector is not None
        self._rebuild.clear()
        await self._connector.reset(self._client)  # pooled connections may predate the loss
        pubsub = self._connector.subscriber()
        wanted = set(self._subscriptions.wanted)
        try:
            async with asyncio.timeout(2 * self.timeout):
                await pubsub.unsubscribe(self.keys.all + ":none")  # allowed? Refused now rather than at a leave
                await pubsub.subscribe(self.keys.all, self.own_channel, *wanted)
                early = await _confirmed(pubsub, 2 + len(wanted))
                for script in self.keys.scripts.all:
                    await self._client.script_load(script.source)
                await self.on_rebuild(self._client)
        except BaseException:
            await _close(pubsub)
            raise
        self.health.connected = True
        self._probe_heard_at = asyncio.get_running_loop().time()
        self.watchdog.usable()
        self._writer.up.set()
        self._subscriptions.attach(pubsub, wanted)
        if wanted != self._subscriptions.wanted:  # changed while connecting
            self.spawn(self._sync_subscriptions(), "subscribing")
        for data in early:
            self.on_message(data)
        self.on_connected()
        return pubsub

    def _new_client(self, socket_timeout: float | None) -> Client:
        assert self._connector is not None
        return self._connector.client(socket_timeout)

    async def run_id(self, client: Client, key: str) -> str:
        """The ``run_id`` of the server that holds ``key`` (on a cluster, the master of its slot)."""
        assert self._connector is not None
        return await self._connector.run_id(client, key)

    def _master(self) -> str:
        """`` (the master of 'service', host:port)`` through Sentinel, for the log's lines; else nothing."""
        assert self._connector is not None
        assert self._client is not None
        return self._connector.describe(self._client)

    async def _check_master(self) -> None:
        """Through Sentinel: rebuild on the master the sentinels name if it is not the one connected to,
        rather than write to a demoted one until it says so (or its clients are killed)."""
        assert self._connector is not None
        assert self._client is not None
        if self.health.connected:
            moved = await self._connector.moved(self._client)
            if moved is not None and self.health.connected:
                self._lost(ConnectionError(moved))

    # the heartbeat

    def heartbeat_command(self) -> Command:
        """The command that records this process's heartbeat, reaps dead ones and probes its own channel."""
        dead_after_ms = int(self.dead_after * 1000)
        args = (self.worker_id, dead_after_ms, self.keys.worker_prefix, self.keys.all, self.own_channel)
        return ("EVALSHA", self.keys.scripts.heartbeat.sha, 2, self.keys.workers, self.keys.clients, *args)

    def probe_heard(self) -> None:
        """The listener heard this process's probe (a `Ping` on its own channel)."""
        self._probe_heard_at = asyncio.get_running_loop().time()

    def _hears_own_channel(self, subscribers: int) -> bool:
        """Whether the listener still hears this process's channel: on one Redis, PUBLISH counted it among
        the probe's ``subscribers``; on a cluster, where a count can be 0 while a slot moves or be another
        node's, it heard a probe within the last two heartbeats and ``timeout``."""
        if self.keys.counts_listeners:
            return subscribers > 0
        return asyncio.get_running_loop().time() - self._probe_heard_at <= 2 * self.heartbeat + self.timeout

    async def _heartbeat_forever(self) -> None:
        """Beat, reap dead processes, and check that this process's listener hears its own channel."""
        while True:
            await asyncio.sleep(self.heartbeat)
            self._failures.report()
            if not self.health.connected:
                continue
            try:
                subscribers, reaped = await self.call(self.heartbeat_command(), "heartbeat")
                if self.keys.sharded:  # the process's channel is on a slot of its own: probed apart
                    self.enqueue(("SPUBLISH", self.own_channel, Ping().encode()), "heartbeat")
            except InternalError:  # no answer (the writer has marked the connection lost), or refused
                self.watchdog.failing(self._failures.latest)
                continue
            self.watchdog.usable()
            if reaped:
                logger.warning("removed %d clients of processes that stopped beating", reaped)
            if not self._hears_own_channel(subscribers) and self.health.connected:
                logger.error("this process's listener is not subscribed in Redis; reconnecting")
                self._rebuild.set()
            await self._check_master()


async def _confirmed(pubsub: Subscriber, count: int) -> list[str]:
    """Wait for ``count`` subscribe confirmations; the messages heard meanwhile, to handle after."""
    early: list[str] = []
    while count:
        message = await pubsub.get_message(timeout=1.0)
        if message is None:
            continue
        if message["type"] == "subscribe":
            count -= 1
        elif message["type"] == "message":
            early.append(message["data"])
    return early


async def _stop(tasks: list[asyncio.Task[Any]], grace: float) -> None:
    """Cancel ``tasks`` and wait for them; one that outlives a cancellation (redis-py may swallow one
    while it connects) is cancelled again every ``grace`` seconds until it ends."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=grace)
        if pending:
            logger.warning("%d Redis tasks still running %.1f s after their cancellation", len(pending), grace)


async def _close(pubsub: Subscriber) -> None:
    """Close a subscriber and its connection (redis-py does not close a replaced one by itself); the
    connection even when a cancellation cuts the first step short."""
    try:
        with contextlib.suppress(Exception):
            aclose: Callable[[], Awaitable[None]] = pubsub.aclose  # redis-py < 8.2 leaves it unannotated
            await aclose()
    finally:
        if isinstance(pubsub, PubSub):
            with contextlib.suppress(Exception):
                await pubsub.connection_pool.disconnect()
