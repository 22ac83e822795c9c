"""``RedisBackend``: one app over many processes and machines, sharing one Redis.

Each process keeps a full mirror of every process's clients (a `Presence` holding its own
`User` objects beside `RemoteUser` ones, `mirror`), so that ``Session.online``,
``Session.verified`` and ``Session.room`` stay synchronous reads. Changes are written to Redis
by one ordered writer and published by the same Lua script (`keys`), and every process applies
what it hears to its mirror. A listener, supervised (`link`) rather than trusted to redis-py's
silent retries, reconnects with backoff and then rebuilds: it re-announces this process's
clients and tokens and reloads the mirror, so a Redis that restarted empty is whole again.

A room's broadcasts go on the room's own channel, which a process hears only while it has
members in the room: a broadcast costs only the processes it is for. Delivery to a client of
another process is a PUBLISH on that process's channel; on one Redis, PUBLISH answers how many
subscribers heard it, so a send to a process that has died raises like a send to a closed
socket. On a cluster no check reads a count (a slot's move zeroes it for live listeners): a
process is dead once its heartbeat stops and it is reaped, and a listener deaf once it stops
hearing its own probe. Anything that needs Redis and does not get an answer within
``timeout`` seconds raises `BackendUnavailable`; writes that nobody awaits are logged and
counted, and re-sent by the rebuild.

This module glues the parts together; it alone touches the app's session store
(``sessions``), its history rules (``history``) and the `User` internals the backend
interface leaves to backends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket as socket_module
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

from websockets.exceptions import ConnectionClosedError

from ...exc import BackendUnavailable
from ...history import History, stampable
from ...identity import TokenRecord, UserId
from ...presence import Presence
from ...remote import RemoteUser
from ...user import User
from ...wire import Position
from ..base import BackendHealth, IndexedBackend
from . import codec
from .address import Client, is_cluster
from .faults import redacted
from .history_store import RedisHistory
from .history_sync import HistorySync
from .joins import Joins
from .keys import Keys
from .link import RedisLink
from .local import LocalClients
from .mirror import Mirror
from .requests import Requests
from .tokens import RedisTokens
from .writer import Command

logger = logging.getLogger("websuckets.redis")


class RedisBackend(IndexedBackend):
    """Sessions, tokens, rooms and delivery shared by every process connected to one Redis.

    Args:
        url: ``redis://[[user]:password@]host:port/db``, ``rediss://`` for TLS,
            ``unix:///path/to/redis.sock?db=0``, or through Redis Sentinel
            ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``
            (``rediss+sentinel://`` for TLS; the sentinels' own password is ``?sentinel_password=``),
            or a Redis Cluster ``redis+cluster://[user:password@]host:port[,host:port...]``
            (``rediss+cluster://`` for TLS; redis-py 8.2 or newer); the passwords never reach a log.
            A URL that is none of these stops the app at start-up (`BackendUnavailable`, naming it
            and the forms accepted).
        namespace: the prefix of every key and channel; apps sharing a namespace share clients.
        timeout: seconds after which an operation that needs Redis fails with `BackendUnavailable`.
        heartbeat: seconds between this process's heartbeats (and its listener's probe).
        dead_after: seconds without a heartbeat after which a process is dead and its clients
            leave every other process's view (it takes up to ``dead_after + heartbeat``).
        exit_after: seconds Redis may stay unusable without a break (the connection lost and not
            rebuilt, or the heartbeat failing) before this process gives up: it logs one ERROR line
            naming the cause and the duration, closes its connections with 1001 and stops with an
            error (`failure`; ``websuckets run`` exits 1), for its orchestrator to restart it.
            ``None``, the default: it reconnects forever.
        room_channels: publish a room's broadcasts on the room's own channel, heard only by the
            processes with members in it. ``False`` publishes them on the namespace's one channel,
            which every process hears, as websuckets 0.1 did: for a rolling upgrade from it (this
            version hears both ways; 0.1 hears only that one). Not on a cluster, where 0.1 never ran.
    """

    shared = True

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        namespace: str = "websuckets",
        timeout: float = 2.0,
        heartbeat: float = 1.0,
        dead_after: float = 5.0,
        exit_after: float | None = None,
        room_channels: bool = True,
    ) -> None:
        self.url = url
        self.keys = Keys(namespace, sharded=is_cluster(url))
        self.timeout = timeout
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        self.exit_after = exit_after
        self.room_channels = room_channels
        self.presence = Presence()
        self.health = BackendHealth(connected=False)
        self.worker_id = ""
        """``host:pid:random``, chosen when the app starts."""
        self._local = LocalClients(self.health)
        self._epoch: str | None = None
        """The namespace's ``{ns}:epoch`` when last connected: another one means Redis lost its data."""
        self._link = RedisLink(
            url,
            self.keys,
            timeout=timeout,
            heartbeat=heartbeat,
            dead_after=dead_after,
            health=self.health,
            on_rebuild=self._rebuild_state,
            on_connected=self._connected,
            on_message=self._handle,
            exit_after=exit_after,
        )
        self._tokens = RedisTokens(self._link, self.keys)
        self._requests = Requests(self.keys, timeout, self._link.call, self._link.enqueue, self._worker_of)
        self._histories = RedisHistory(self._link, self.keys)
        self._sync = HistorySync(
            self._histories,
            timeout=timeout,
            health=self.health,
            history_of=self._history_of,
            members_here=self._members_here,
            is_member=self._is_member,
        )
        self._joins = Joins(
            presence=self.presence,
            link=self._link,
            keys=self.keys,
            sync=self._sync,
            write=self._write_now,
            publish=self._publish,
            keeps_history=self.keeps_history,
            resume_position=lambda user, room: self.sessions.take_resume_position(user, room),
        )
        self._mirror = Mirror(self.presence, self.worker_id, self.deliver)
        self._receivers: dict[type[codec.Message], Callable[[Any], None]] = {
            codec.RoomMessage: self._heard_in_room,
            codec.Fence: self._fence_heard,
            codec.Upsert: self._upserted,
            codec.Remove: self._removed,
            codec.Broadcast: self._broadcast_heard,
            codec.ToUser: self._to_user_heard,
            codec.Direct: self._direct_heard,
            codec.Join: self._join_forwarded,
            codec.Joined: self._requests.answered,
            codec.Leave: self._leave_forwarded,
            codec.Revoke: self._revoke_heard,
            codec.Ping: self._ping_heard,
        }
        """What to do with each kind of message heard."""

    def __repr__(self) -> str:
        return f"RedisBackend({redacted(self.url)!r})"

    # lifecycle

    async def start(self) -> None:
        """Connect, announce this process, load the mirror; `BackendUnavailable` naming the URL if Redis is away."""
        if self.keys.sharded and not self.room_channels:
            why = "with room_channels=False: a cluster needs room channels"
            raise BackendUnavailable(f"cannot use the Redis URL {redacted(self.url)} {why}")
        self.worker_id = f"{socket_module.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._requests.worker_id = self.worker_id
        self._mirror = Mirror(self.presence, self.worker_id, self.deliver)  # the id of this run, the index of now
        await self._link.start(self.worker_id)

    async def close(self) -> None:
        """Take this process's clients out of every other process's view, then disconnect."""
        await self._link.close(farewell=self._reassert([]))

    async def failure(self) -> BackendUnavailable:
        """Return once Redis has been unusable for ``exit_after`` seconds in a row (never without it)."""
        return await self._link.watchdog.wait()

    async def _rebuild_state(self, client: Client) -> None:
        """Re-announce this process's clients and tokens, resend lost revocations, reload the mirror."""
        run_id = await self._link.run_id(client, self.keys.clients)
        another_server = run_id != self._histories.run_id != ""  # a failover, or a restart
        self._histories.run_id = run_id
        fresh_epoch = secrets.token_hex(8)
        await client.set(self.keys.epoch, fresh_epoch, nx=True)
        epoch = str(await client.get(self.keys.epoch))
        redis_was_emptied = self._epoch is not None and epoch != self._epoch
        self._epoch = epoch
        local = list(self._local.users.values())
        pipe = client.pipeline(transaction=False)
        pipe.execute_command(*self._link.heartbeat_command())
        pipe.execute_command(*self._reassert(local))
        for user in local:
            pipe.execute_command(*self._upsert(user))
        held = self._held_tokens() if redis_was_emptied else ()
        for command in self._tokens.rebuild_commands(held, another_server):
            pipe.execute_command(*command)
        await pipe.execute()
        self._tokens.rebuilt()
        for digest in await self._tokens.vanished(client, [digest for digest, _ in self._held_tokens()]):
            self._revoked(digest)  # revoked while this process heard nothing
        self._mirror.load(await client.hgetall(self.keys.clients))  # type: ignore[arg-type]  # decoded

    def _connected(self) -> None:
        if self._sync.tracks:
            self._link.spawn(self._sync.check_positions(), "checking the history rooms' positions")

    # presence

    def add_online(self, user: User) -> None:
        self._local.users[user.client_id] = user
        super().add_online(user)
        self._publish(user)

    def remove_online(self, user: User) -> None:
        rooms = user.rooms
        super().remove_online(user)
        for room in rooms:
            self._joins.left_here(room)
        if self._local.users.pop(user.client_id, None) is not None:
            sha, args = self.keys.scripts.remove.sha, (user.client_id.hex, self.keys.all)
            self._link.enqueue(("EVALSHA", sha, 2, self.keys.clients, self._worker_set, *args), "leave")

    def user_changed(self, user: User) -> None:
        self._publish(user)

    def _publish(self, user: User) -> None:
        """Write a local client's record and tell every process (a no-op once it has left)."""
        if user.client_id in self._local.users:
            self._link.enqueue(self._upsert(user), "presence")

    def _upsert(self, user: User) -> Command:
        """The command that writes a local client's record and publishes it."""
        cid, record = user.client_id.hex, self._mirror.record(user).encode()
        event = codec.Upsert.text(cid, record)
        sha = self.keys.scripts.upsert.sha
        return ("EVALSHA", sha, 2, self.keys.clients, self._worker_set, cid, record, self.keys.all, event)

    def _reassert(self, local: list[User]) -> Command:
        """The command that removes every client of this process's but ``local`` from Redis, telling everyone."""
        ids = [user.client_id.hex for user in local]
        return ("EVALSHA", self.keys.scripts.reassert.sha, 2, self._worker_set, self.keys.clients, self.keys.all, *ids)

    @property
    def _worker_set(self) -> str:
        return self.keys.worker(self.worker_id)

    def _members_here(self, room: str) -> Iterator[User]:
        return self._local.among(self.presence.members(room))

    def _is_member(self, user: User, room: str) -> bool:
        return user.client_id in self._local.users and room in user.rooms

    def _worker_of(self, client_id: UUID) -> str | None:
        """The process of a client of another process (None for a client of this one, or no client)."""
        user = self.presence.online.get(client_id)
        return user.socket.worker if isinstance(user, RemoteUser) else None

    def _room_channel(self, room: str) -> str:
        """Where a broadcast to ``room`` is published."""
        return self.keys.room_channel(room) if self.room_channels else self.keys.all

    # tokens

    def remember_token(self, digest: str, record: TokenRecord) -> None:
        self._tokens.remember(digest, record)

    def forget_token(self, digest: str) -> None:
        self._tokens.forget(digest)

    async def find_token(self, digest: str) -> TokenRecord | None:
        """Look the digest up in Redis; a miss is asked again after 50 and 200 ms (a token just
        issued on another process, whose write may still be on its way)."""
        return await self._tokens.find(digest)

    def _held_tokens(self) -> list[tuple[str, TokenRecord]]:
        return self.sessions.held_tokens()

    def _revoked(self, digest: str) -> None:
        self.sessions.revoked(digest)

    # rooms and delivery

    async def join(self, client_id: UUID, room: str) -> None:
        user = self._local.users.get(client_id)
        if user is None:
            await self._requests.join(client_id, room)
            return
        await self._joins.join(user, room)

    async def leave(self, client_id: UUID, room: str) -> None:
        user = self._local.users.get(client_id)
        if user is None:
            if client_id in self.presence.online:
                with contextlib.suppress(KeyError):  # its process is gone, and the client with it
                    await self._requests.ask(client_id, codec.Leave(client_id, room).encode())
            return
        self._joins.leave(user, room)
        await self._write_now(user, "leave")

    async def broadcast(self, message: str | bytes, room: str | None, exclude: frozenset[UUID]) -> Position | None:
        history = None if room is None else self._history_of(room)
        if history is not None:
            assert room is not None
            channel = self._room_channel(room)
            return await self._histories.append(stampable(message, room), room, history, exclude, channel)
        self._deliver_to_room(room, exclude, message)
        event = codec.Broadcast(room, exclude, self.worker_id, message).encode()
        channel = self.keys.all if room is None else self._room_channel(room)
        await self._link.call((self.keys.publish, channel, event), "broadcast")
        return None

    async def send_to_user(self, user_id: UserId, message: str | bytes) -> None:
        self._deliver_to_user(user_id, message)
        event = codec.ToUser(user_id, self.worker_id, message).encode()
        await self._link.call((self.keys.publish, self.keys.all, event), "send to user")

    async def deliver(self, client_id: UUID, worker: str, message: str | bytes) -> None:
        """Send to a client of another process; raises ``ConnectionClosed`` if that process is gone: on one
        Redis, as soon as nobody hears its channel; on a cluster (whose counts a slot's move or failover
        can zero for a live process) once its clients are reaped (`RemoteSocket.gone`)."""
        event = codec.Direct(client_id, message).encode()
        heard = await self._link.call((self.keys.publish, self.keys.worker_channel(worker), event), "send")
        if not heard and self.keys.counts_listeners:
            raise ConnectionClosedError(None, None)

    async def _write_now(self, user: User, what: str) -> None:
        await self._link.call(self._upsert(user), what)

    def _deliver_to_room(self, room: str | None, exclude: frozenset[UUID], message: str | bytes) -> None:
        """Send to this process's members of ``room`` (its every client if ``None``) but ``exclude``."""
        self._local.send(self.presence.online if room is None else self.presence.members(room), exclude, message)

    def _deliver_to_user(self, user_id: UserId, message: str | bytes) -> None:
        self._local.send_to_each(self.presence.verified.get(user_id, ()), message)

    # room history: kept in a stream, numbered by one script, delivered here only as heard back

    async def recover(self, user: User, room: str, since: Position | None) -> bool:
        return await self._sync.catch_up(user, room, since, self._sync.start_catch_up(user, room))

    def _history_of(self, room: str) -> History | None:
        return self.history.for_room(room) if self.history.active else None

    # what the other processes say

    def _handle(self, data: str) -> None:
        try:
            message = codec.decode(data)
            if message is not None:
                self._receivers[type(message)](message)
        except Exception:
            self.health.listener_errors += 1
            logger.exception("cannot handle a message from Redis (%d bytes)", len(data))

    def _heard_in_room(self, message: codec.RoomMessage) -> None:
        self._sync.heard(message.room, message.exclude, message.position, message.message)

    def _fence_heard(self, message: codec.Fence) -> None:
        self._sync.fence_heard(message.key)

    def _upserted(self, message: codec.Upsert) -> None:
        self._mirror.apply(message.client_id, message.record)

    def _removed(self, message: codec.Remove) -> None:
        local = self._local.users.get(message.client_id)
        if local is not None:  # reaped while this process could not beat: say it is still here
            logger.warning(
                "client %s was removed from Redis while connected here; announcing it again", message.client_id
            )
            self._publish(local)
            return
        self._mirror.forget(message.client_id)

    def _broadcast_heard(self, message: codec.Broadcast) -> None:
        if message.origin != self.worker_id:
            self._deliver_to_room(message.room, message.exclude, message.message)

    def _to_user_heard(self, message: codec.ToUser) -> None:
        if message.origin != self.worker_id:
            self._deliver_to_user(message.user_id, message.message)

    def _direct_heard(self, message: codec.Direct) -> None:
        self._local.send_to(message.client_id, message.message)

    def _join_forwarded(self, message: codec.Join) -> None:
        user = self._local.users.get(message.client_id)  # None: gone meanwhile, nothing to join
        work = None if user is None else self._joins.join(user, message.room)  # joined now, in the order asked
        self._link.spawn(self._requests.answer_when_done(message, work), f"joining {message.client_id}")

    def _leave_forwarded(self, message: codec.Leave) -> None:
        user = self._local.users.get(message.client_id)
        if user is None:
            return
        self._joins.leave(user, message.room)
        self._publish(user)

    def _revoke_heard(self, message: codec.Revoke) -> None:
        self._revoked(message.digest)

    def _ping_heard(self, message: codec.Ping) -> None:
        """The heartbeat's probe of this process's own channel."""
        self._link.probe_heard()
