"""``RedisBackend``: one app over many processes and machines, sharing one Redis.

Each process keeps a full mirror of every process's clients (a `Presence` holding its own
`User` objects beside `RemoteUser` ones), so that ``Session.online``, ``Session.verified``
and ``Session.room`` stay synchronous reads. Changes are written to Redis by one ordered
writer and published by the same Lua script (`_redis_keys`), and every process applies
what it hears to its mirror. A listener, supervised here rather than trusted to redis-py's
silent retries, reconnects with backoff and then rebuilds: it re-announces this process's
clients and tokens and reloads the mirror, so a Redis that restarted empty is whole again.

Delivery to a client of another process is a PUBLISH on that process's channel; PUBLISH
answers how many subscribers heard it, so a send to a process that has died raises like a
send to a closed socket. Anything that needs Redis and does not get an answer within
``timeout`` seconds raises `BackendUnavailable`; writes that nobody awaits are logged and
counted, and re-sent by the rebuild.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import os
import random
import secrets
import socket as socket_module
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from pydantic_core import to_json
from websockets.exceptions import ConnectionClosedError

from ..delivery import send_now
from ..exc import BackendUnavailable
from ..history import HISTORY_IDLE, History, Position, Read, gap_event, replay, stamp, stampable
from ..identity import TokenRecord, UserId
from ..presence import Presence
from ..remote import RemoteSocket, RemoteUser
from ..user import User
from ._redis_keys import APPEND, HEARTBEAT, READ_HISTORY, REASSERT, REMOVE, REVOKE, SCRIPTS, UPSERT, Keys
from .base import BackendHealth, IndexedBackend

try:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import NoScriptError
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError("RedisBackend needs redis-py: pip install 'websuckets[redis]'") from exc

__all__ = ["RedisBackend"]

logger = logging.getLogger("websuckets.redis")

TOKEN_RETRIES = (0.05, 0.2)
"""Seconds to wait before asking Redis again for a token it does not know (issued a moment ago?)."""

MAX_QUEUED = 100_000
"""Writes nobody waits for that may queue up while Redis is away; the oldest are dropped past it."""

_INTERNAL = frozenset(("socket", "id", "token"))
"""User attributes that never go into the shared record (the token least of all)."""


class _Op:
    """One command for the writer; ``future`` is set when somebody awaits its answer."""

    __slots__ = ("args", "future", "what")

    def __init__(self, args: tuple[Any, ...], future: asyncio.Future[Any] | None, what: str) -> None:
        self.args = args
        self.future = future
        self.what = what


class _CatchUp:
    """A member of a history room being brought up to date: live messages wait for its replay."""

    __slots__ = ("fence", "gap", "live")

    def __init__(self) -> None:
        self.live: list[tuple[int, str]] = []
        """(offset, stamped message) heard meanwhile, sent after the replay."""
        self.gap = False
        """Set when messages of the room were lost meanwhile: the member is told after its replay."""
        self.fence: asyncio.Future[None] | None = None
        """Done once this process has heard everything published before the history was read."""


class _RoomTrack:
    """What this process has heard of a history room it has members in: to notice lost messages."""

    __slots__ = ("catching_up", "epoch", "offset")

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.offset = 0
        self.catching_up: dict[UUID, _CatchUp] = {}


class RedisBackend(IndexedBackend):
    """Sessions, tokens, rooms and delivery shared by every process connected to one Redis.

    Args:
        url: ``redis://[[user]:password@]host:port/db``, ``rediss://`` for TLS, or
            ``unix:///path/to/redis.sock?db=0``; the password never reaches a log.
        namespace: the prefix of every key and channel; apps sharing a namespace share clients.
        timeout: seconds after which an operation that needs Redis fails with `BackendUnavailable`.
        heartbeat: seconds between this process's heartbeats (and its listener's probe).
        dead_after: seconds without a heartbeat after which a process is dead and its clients
            leave every other process's view (it takes up to ``dead_after + heartbeat``).
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
    ) -> None:
        self.url = url
        self.keys = Keys(namespace)
        self.timeout = timeout
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        self.presence = Presence()
        self.health = BackendHealth(connected=False)
        self.worker_id = ""
        """``host:pid:random``, chosen when the app starts."""
        self._local: dict[UUID, User] = {}
        self._client: Redis | None = None
        self._queue: deque[_Op] = deque()
        self._queued = asyncio.Event()
        self._rebuild = asyncio.Event()
        self._up = asyncio.Event()
        """Set while Redis answers: the writer waits on it."""
        self._tasks: list[asyncio.Task[None]] = []
        self._epoch: str | None = None
        self._unwritten_tokens: dict[str, TokenRecord] = {}
        self._unsent_revocations: set[str] = set()
        self._unshareable: set[str] = set()
        self._tracks: dict[str, _RoomTrack] = {}
        """History rooms with members here, and the last position heard in each."""
        self._fences: dict[str, asyncio.Future[None]] = {}
        self._run_id = ""
        """The Redis server's ``run_id``: a new one (a restart, a failover) ends every history room's epoch."""
        self._background: set[asyncio.Task[Any]] = set()
        self._down_since = 0.0
        self._last_failure_log = -math.inf
        self._last_drop_log = -math.inf
        self._failures_since_log = 0

    def __repr__(self) -> str:
        return f"RedisBackend({_redacted(self.url)!r})"

    # lifecycle

    async def start(self) -> None:
        """Connect, announce this process, load the mirror; `BackendUnavailable` naming the URL if Redis is away."""
        self.worker_id = f"{socket_module.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._queued = asyncio.Event()
        self._rebuild = asyncio.Event()
        self._up = asyncio.Event()
        self._client = self._new_client(socket_timeout=self.timeout)
        try:
            pubsub = await self._connect()
        except Exception as exc:
            await self._client.aclose()
            raise BackendUnavailable(f"cannot reach Redis at {_redacted(self.url)}: {_reason(exc)}") from exc
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="websuckets redis writer"),
            asyncio.create_task(self._listen_forever(pubsub), name="websuckets redis listener"),
            asyncio.create_task(self._heartbeat_forever(), name="websuckets redis heartbeat"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_ended)
        logger.info("connected to Redis at %s as %s", _redacted(self.url), self.worker_id)

    async def close(self) -> None:
        """Take this process's clients out of every other process's view, then disconnect."""
        tasks, self._tasks = self._tasks, []
        if self.health.connected and self._client is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timeout):
                    await self._client.evalsha(REASSERT.sha, 2, self._worker_set, self.keys.clients, self.keys.all)
                    await self._client.zrem(self.keys.workers, self.worker_id)
        tasks += list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.health.connected = False
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task not in self._tasks:
            return  # closing
        logger.critical("%s stopped: %r; this process no longer shares state", task.get_name(), task.exception())

    # presence

    def add_online(self, user: User) -> None:
        self._local[user.client_id] = user
        super().add_online(user)
        self._publish(user)

    def remove_online(self, user: User) -> None:
        rooms = [room for room in self.presence.rooms_of(user.client_id) if room in self._tracks]
        super().remove_online(user)
        for room in rooms:
            self._untrack_if_empty(room)
        if self._local.pop(user.client_id, None) is not None:
            args = (user.client_id.hex, self.keys.all)
            self._enqueue(("EVALSHA", REMOVE.sha, 2, self.keys.clients, self._worker_set, *args), "leave")

    def user_changed(self, user: User) -> None:
        self._publish(user)

    def _publish(self, user: User) -> None:
        """Write a local client's record and tell every process (a no-op once it has left)."""
        if user.client_id in self._local:
            self._enqueue(self._upsert(user), "presence")

    def _upsert(self, user: User) -> tuple[Any, ...]:
        """The command that writes a local client's record and publishes it."""
        cid, record = user.client_id.hex, self._record(user)
        event = '{"t":"up","c":"' + cid + '","d":' + record + "}"
        return ("EVALSHA", UPSERT.sha, 2, self.keys.clients, self._worker_set, cid, record, self.keys.all, event)

    def _record(self, user: User) -> str:
        attributes = {}
        for name, value in vars(user).items():
            if name.startswith("_") or name in _INTERNAL:
                continue
            try:
                attributes[name] = json.loads(to_json(value))
            except (ValueError, TypeError):
                if name not in self._unshareable:
                    self._unshareable.add(name)
                    logger.warning("User.%s holds %s, not a JSON value: it stays on this process", name, type(value))
        address = user.socket.remote_address
        record = {
            "w": self.worker_id,
            "u": user.id if user.verified else None,
            "a": attributes,
            "r": sorted(self.presence.rooms_of(user.client_id)),
            "ra": list(address) if isinstance(address, tuple) else address,
        }
        return to_json(record).decode()

    # tokens

    def remember_token(self, digest: str, record: TokenRecord) -> None:
        self._enqueue(
            self._token_write(digest, record),
            "token",
            on_fail=lambda: self._unwritten_tokens.__setitem__(digest, record),
        )

    def _token_write(self, digest: str, record: TokenRecord) -> tuple[Any, ...]:
        value = to_json({"u": record.user_id, "x": record.expires_at}).decode()
        return ("SET", self.keys.token(digest), value, "PXAT", max(1, int(record.expires_at * 1000)))

    def forget_token(self, digest: str) -> None:
        self._unwritten_tokens.pop(digest, None)
        self._enqueue(self._revoke(digest), "revocation", on_fail=lambda: self._unsent_revocations.add(digest))

    def _revoke(self, digest: str) -> tuple[Any, ...]:
        """The command that deletes a token and tells every process."""
        event = '{"t":"rv","d":"' + digest + '"}'
        return ("EVALSHA", REVOKE.sha, 1, self.keys.token(digest), self.keys.all, event)

    async def find_token(self, digest: str) -> TokenRecord | None:
        """Look the digest up in Redis; a miss is asked again after 50 and 200 ms (a token just
        issued on another process, whose write may still be on its way)."""
        stored = await self._call(("GET", self.keys.token(digest)), "token look-up")
        for delay in TOKEN_RETRIES:
            if stored is not None:
                break
            await asyncio.sleep(delay)
            stored = await self._call(("GET", self.keys.token(digest)), "token look-up")
        if stored is None:
            return None
        data = json.loads(stored)
        return TokenRecord(data["u"], data["x"])

    # rooms and delivery

    async def join(self, client_id: UUID, room: str) -> None:
        user = self._local.get(client_id)
        if user is None:
            await self._forward(client_id, {"t": "j", "c": client_id.hex, "r": room})
            return
        if not self.keeps_history(room):
            self.presence.join(user, room)
            await self._write_now(user, "join")
            return
        await self._finish_join(user, room, self._join_held(user, room))

    async def leave(self, client_id: UUID, room: str) -> None:
        user = self._local.get(client_id)
        if user is None:
            if client_id in self.presence.online:
                with contextlib.suppress(KeyError):  # its process is gone, and the client with it
                    await self._forward(client_id, {"t": "l", "c": client_id.hex, "r": room})
            return
        self.presence.leave(user, room)
        self._untrack_if_empty(room)
        await self._write_now(user, "leave")

    async def broadcast(self, message: str | bytes, room: str | None, exclude: frozenset[UUID]) -> Position | None:
        history = None if room is None or not self.history.active else self.history.for_room(room)
        if history is not None:
            assert room is not None
            return await self._append(stampable(message, room), room, history, exclude)
        self._deliver_to_room(room, exclude, message)
        event = {"t": "b", "r": room, "x": [cid.hex for cid in exclude], "o": self.worker_id, **_wire(message)}
        await self._call(("PUBLISH", self.keys.all, to_json(event)), "broadcast")
        return None

    async def send_to_user(self, user_id: UserId, message: str | bytes) -> None:
        self._deliver_to_user(user_id, message)
        event = {"t": "u", "u": user_id, "o": self.worker_id, **_wire(message)}
        await self._call(("PUBLISH", self.keys.all, to_json(event)), "send to user")

    async def deliver(self, client_id: UUID, worker: str, message: str | bytes) -> None:
        """Send to a client of another process; raises ``ConnectionClosed`` if that process is gone."""
        event = to_json({"t": "s", "c": client_id.hex, **_wire(message)})
        heard = await self._call(("PUBLISH", self.keys.worker_channel(worker), event), "send")
        if not heard:
            raise ConnectionClosedError(None, None)

    async def _forward(self, client_id: UUID, event: dict[str, Any]) -> None:
        user = self.presence.online.get(client_id)
        if not isinstance(user, RemoteUser):
            raise KeyError(client_id)
        heard = await self._call(("PUBLISH", self.keys.worker_channel(user.socket.worker), to_json(event)), "forward")
        if not heard:
            raise KeyError(client_id)

    def _deliver_to_user(self, user_id: UserId, message: str | bytes) -> None:
        connections = self.presence.verified.get(user_id, ())
        send_now([user.socket for user in connections if user.client_id in self._local], message)

    # room history: kept in a stream, numbered by one script, delivered here only as heard back

    async def _append(self, message: str, room: str, history: History, exclude: frozenset[UUID]) -> Position:
        """Keep and publish a history room's message; its members here get it when this process hears it,
        in the order of the room's offsets, like everyone else's."""
        head = to_json({"t": "h", "r": room, "x": [cid.hex for cid in exclude], "o": self.worker_id}).decode()[:-1]
        keys = (self.keys.history_meta(room), self.keys.history(room))
        timed = "0" if history.ttl is None else "1"  # Redis's time only for an age limit
        room_args = (history.size, _idle_ms(history), self.keys.all, head, message, timed)
        command = ("EVALSHA", APPEND.sha, 2, *keys, secrets.token_hex(8), self._run_id, *room_args)
        epoch, offset = await self._call(command, "broadcast")
        return Position(epoch, offset)

    async def recover(self, user: User, room: str, since: Position | None) -> bool:
        return await self._catch_up(user, room, since, self._start_catch_up(user, room))

    def _join_held(self, user: User, room: str) -> _CatchUp:
        """Join a local client to a history room, holding its live messages until its catch-up."""
        catch_up = self._start_catch_up(user, room)
        self.presence.join(user, room)
        return catch_up

    async def _finish_join(self, user: User, room: str, catch_up: _CatchUp) -> None:
        try:
            await self._write_now(user, "join")
        except BaseException:
            self._release(user, room, catch_up)
            raise
        await self._catch_up(user, room, self.sessions.take_resume_position(user, room), catch_up)

    def _start_catch_up(self, user: User, room: str) -> _CatchUp:
        track = self._tracks.get(room)
        if track is None:
            track = self._tracks[room] = _RoomTrack()
        catch_up = track.catching_up[user.client_id] = _CatchUp()
        return catch_up

    def _end_catch_up(self, user: User, room: str, catch_up: _CatchUp) -> list[tuple[int, str]]:
        """Stop holding live messages for ``user``: those held so far, to send now."""
        track = self._tracks.get(room)
        if track is not None and track.catching_up.get(user.client_id) is catch_up:
            del track.catching_up[user.client_id]
        if catch_up.fence is not None:
            catch_up.fence.cancel()
        return catch_up.live

    def _release(self, user: User, room: str, catch_up: _CatchUp) -> None:
        """A catch-up that failed: the live messages held so far go out as they are."""
        for _, message in self._end_catch_up(user, room, catch_up):
            send_now([user.socket], message)

    async def _catch_up(self, user: User, room: str, since: Position | None, catch_up: _CatchUp) -> bool:
        """Read the room's history and wait until this process has heard everything published
        before the read; then, in one step, replay, position, and what was heard meanwhile."""
        try:
            read, fence = await self._read_history(room, since, catch_up)
            fenced = await self._wait_fence(fence)
        except BaseException:  # Redis away, or the caller cancelled (a command's time limit)
            self._release(user, room, catch_up)
            raise
        live = self._end_catch_up(user, room, catch_up)
        track = self._tracks.get(room)
        if track is not None and track.epoch is None:
            track.epoch, track.offset = read.epoch, read.top
        if user.client_id not in self._local or room not in self.presence.rooms_of(user.client_id):
            return False  # gone meanwhile
        complete = replay(user.socket, room, since, read, live)
        if catch_up.gap or not fenced:
            send_now([user.socket], gap_event(room))
        return complete

    async def _read_history(
        self, room: str, since: Position | None, catch_up: _CatchUp
    ) -> tuple[Read, asyncio.Future[None]]:
        """The room's history after ``since``, and the fence the read sent (kept on ``catch_up`` too, to cancel)."""
        history = self.history.for_room(room)
        assert history is not None, "a room with history"
        catch_up.fence, fence_message = self._new_fence()
        since_epoch, since_offset = since if since is not None else ("", 0)
        keys = (self.keys.history_meta(room), self.keys.history(room))
        args = (secrets.token_hex(8), self._run_id, _idle_ms(history), since_epoch, since_offset, history.size)
        own = self.keys.worker_channel(self.worker_id)
        reply = await self._call(("EVALSHA", READ_HISTORY.sha, 2, *keys, *args, own, fence_message), "resume")
        epoch, top, now, entries = reply
        oldest = -math.inf if history.ttl is None else now - history.ttl * 1000
        kept = []
        for entry_id, fields in entries:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            if int(values.get("t", now)) > oldest:  # kept without a time: the room had no ttl then
                kept.append((int(entry_id.partition("-")[0]), values["m"]))
        return Read(epoch, int(top), kept), catch_up.fence

    def _new_fence(self) -> tuple[asyncio.Future[None], str]:
        """A future set when this process hears the returned message on its own channel."""
        fence_id = secrets.token_hex(8)
        future = self._fences[fence_id] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda _: self._fences.pop(fence_id, None))
        return future, '{"t":"f","k":"' + fence_id + '"}'

    async def _wait_fence(self, fence: asyncio.Future[None]) -> bool:
        """Wait for a fence; ``False`` if it did not come back in time (a member is then told to resume again)."""
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.shield(fence)
        except TimeoutError:
            logger.warning("a fence on this process's channel did not come back within %s s", self.timeout)
            return False
        return True

    def _heard_in_room(self, room: str, exclude: frozenset[UUID], position: Position, message: str) -> None:
        """A history room's message, in offset order: to members here, or held for those catching up."""
        track = self._tracks.get(room)
        held: dict[UUID, _CatchUp] = {}
        if track is not None:  # members here (without, a process configured without this room's history)
            self._check_continuity(room, track, position)
            held = track.catching_up
        stamped = stamp(message, room, position)
        if held:  # members here catching up: they get it after their replay
            for cid, catch_up in held.items():
                if cid not in exclude:
                    catch_up.live.append((position.offset, stamped))
            exclude = exclude.union(held)
        self._deliver_to_room(room, exclude, stamped)

    def _check_continuity(self, room: str, track: _RoomTrack, position: Position) -> None:
        """Tell the room's members here when a message of it never arrived (or its history was lost)."""
        if track.epoch is not None and (position.epoch != track.epoch or position.offset != track.offset + 1):
            if position.epoch == track.epoch and position.offset <= track.offset:
                return  # an older message, already covered by a member's replay: nothing lost
            self._tell_gap(room, track)
        track.epoch, track.offset = position

    def _tell_gap(self, room: str, track: _RoomTrack) -> None:
        self.health.history_gaps += 1
        logger.warning("messages of history room %r were lost on their way here; its members will resume", room)
        for catch_up in track.catching_up.values():
            catch_up.gap = True
        members = self.presence.members(room).items()
        send_now(
            [u.socket for cid, u in members if cid in self._local and cid not in track.catching_up], gap_event(room)
        )

    def _untrack_if_empty(self, room: str) -> None:
        if room in self._tracks and not any(cid in self._local for cid in self.presence.members(room)):
            del self._tracks[room]

    async def _check_positions(self) -> None:
        """After a reconnection: once this process has heard what was published before it looked,
        compare each tracked room with Redis, and tell its members here of what was lost."""
        assert self._client is not None
        tracked = [(room, track) for room, track in self._tracks.items() if track.epoch is not None]
        if not tracked:
            return
        fence, message = self._new_fence()
        pipe = self._client.pipeline(transaction=False)
        for room, _ in tracked:
            pipe.hmget(self.keys.history_meta(room), "e", "s", "r")
        pipe.publish(self.keys.worker_channel(self.worker_id), message)
        *metas, _ = await pipe.execute()
        await self._wait_fence(fence)
        for (room, track), (epoch, top, run) in zip(tracked, metas, strict=True):
            alive = epoch is not None and run == self._run_id  # a restarted Redis ended every epoch
            if not alive or epoch != track.epoch or track.offset < int(top):
                self._tell_gap(room, track)
                track.epoch, track.offset = (epoch, int(top)) if alive else (None, 0)

    # the writer: every command of this process, in order, pipelined

    @property
    def _worker_set(self) -> str:
        return self.keys.worker(self.worker_id)

    def _enqueue(self, args: tuple[Any, ...], what: str, on_fail: Callable[[], None] | None = None) -> None:
        """Queue a write nobody waits for; while Redis is away it waits in the queue (bounded)."""
        op = _Op(args, None, what)
        if on_fail is not None:
            op.future = asyncio.get_running_loop().create_future()
            op.future.add_done_callback(lambda future: future.exception() is not None and on_fail())
        if len(self._queue) >= MAX_QUEUED:
            self._fail([self._queue.popleft()], f"over {MAX_QUEUED} writes queued while Redis is away")
        self._queue.append(op)
        self._queued.set()

    async def _call(self, args: tuple[Any, ...], what: str) -> Any:
        """Run one command after every one queued before it; `BackendUnavailable` at once while
        Redis is known to be away, or past ``timeout`` (the command is then never sent)."""
        if not self.health.connected:
            self._fail([], "Redis is not connected")
            raise _unavailable(what)
        op = _Op(args, asyncio.get_running_loop().create_future(), what)
        self._queue.append(op)
        self._queued.set()
        assert op.future is not None
        try:
            async with asyncio.timeout(self.timeout):
                return await op.future
        except TimeoutError:
            self._fail([], f"no answer within {self.timeout} s")
            raise _unavailable(what) from None

    async def _write_now(self, user: User, what: str) -> None:
        await self._call(self._upsert(user), what)

    async def _write_forever(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._queue:
                await self._up.wait()  # writes wait out an outage; the rebuild runs first
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), 512))]
                batch = [op for op in batch if op.future is None or not op.future.done()]  # timed out: not sent
                if batch:
                    await self._write(batch)

    async def _write(self, batch: list[_Op]) -> None:
        assert self._client is not None
        try:
            async with asyncio.timeout(self.timeout):
                pipe = self._client.pipeline(transaction=False)
                for op in batch:
                    pipe.execute_command(*op.args)
                results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            self._fail(batch, _reason(exc))
            self._lost(exc)
            return
        for op, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                self._fail([op], _reason(result))
                if isinstance(result, NoScriptError):
                    self._lost(result)  # Redis restarted under us: the rebuild loads the scripts
            elif op.future is not None and not op.future.done():
                op.future.set_result(result)

    def _fail(self, batch: list[_Op], reason: str) -> None:
        count = max(len(batch), 1)
        self.health.failed_operations += count
        self._failures_since_log += count
        for op in batch:
            if op.future is not None and not op.future.done():
                op.future.set_exception(_unavailable(op.what))
        now = time.monotonic()
        if now - self._last_failure_log >= 10:  # one line per 10 s at most
            logger.error(
                "%d Redis operations failed since the last report (the latest: %s)",
                self._failures_since_log,
                reason,
            )
            self._last_failure_log, self._failures_since_log = now, 0

    def _lost(self, exc: BaseException) -> None:
        """The connection to Redis is broken: mark it, and have the listener rebuild everything."""
        self._up.clear()
        if self.health.connected:
            self.health.connected = False
            self._down_since = time.monotonic()
            logger.error("lost Redis at %s: %s; reconnecting", _redacted(self.url), _reason(exc))
        self._rebuild.set()

    # the listener: supervised, rebuilt after any failure

    async def _listen_forever(self, pubsub: PubSub) -> None:
        while True:
            try:
                await self._listen(pubsub)
            except Exception as exc:
                self._lost(exc)
            finally:
                await _close(pubsub)
            pubsub = await self._reconnect()

    async def _listen(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        deaf_after = 3 * self.heartbeat + self.timeout
        last_heard = loop.time()
        while True:
            if self._rebuild.is_set():
                raise ConnectionError("rebuilding the connection")
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(self.heartbeat, 1.0))
            if message is None:
                if loop.time() - last_heard > deaf_after:
                    raise ConnectionError(f"nothing heard for {deaf_after:.1f} s, not even this process's probe")
                continue
            last_heard = loop.time()
            self._handle(message["data"])

    async def _reconnect(self) -> PubSub:
        delay = 0.05
        while True:
            await asyncio.sleep(random.uniform(0, delay))
            try:
                pubsub = await self._connect()
            except Exception as exc:
                logger.debug("reconnecting to Redis failed: %s", _reason(exc))
                delay = min(delay * 2, 5.0)
                continue
            self.health.reconnects += 1
            logger.info("reconnected to Redis after %.1f s", time.monotonic() - self._down_since)
            return pubsub

    async def _connect(self) -> PubSub:
        """Subscribe, then announce this process and load the mirror; heard events wait in the socket."""
        assert self._client is not None
        self._rebuild.clear()
        await self._client.connection_pool.disconnect()  # pooled connections may predate the loss
        subscriber = self._new_client(socket_timeout=None)
        pubsub = subscriber.pubsub()
        try:
            async with asyncio.timeout(2 * self.timeout):
                await pubsub.subscribe(self.keys.all, self.keys.worker_channel(self.worker_id))
                early = await _confirmed(pubsub, 2)
                for script in SCRIPTS:
                    await self._client.script_load(script.source)
                await self._rebuild_state()
        except BaseException:
            await _close(pubsub)
            raise
        self.health.connected = True
        self._up.set()
        for data in early:
            self._handle(data)
        if self._tracks:
            self._in_background(self._check_positions(), "checking the history rooms' positions")
        return pubsub

    async def _rebuild_state(self) -> None:
        """Re-announce this process's clients and tokens, resend lost revocations, reload the mirror."""
        assert self._client is not None
        client = self._client
        self._run_id = str((await client.info("server"))["run_id"])
        fresh_epoch = secrets.token_hex(8)
        await client.set(self.keys.epoch, fresh_epoch, nx=True)
        epoch = str(await client.get(self.keys.epoch))
        redis_was_emptied = self._epoch is not None and epoch != self._epoch
        self._epoch = epoch
        local = list(self._local.values())
        pipe = client.pipeline(transaction=False)
        pipe.execute_command(*self._heartbeat())
        pipe.evalsha(
            REASSERT.sha, 2, self._worker_set, self.keys.clients, self.keys.all, *[u.client_id.hex for u in local]
        )
        for user in local:
            pipe.execute_command(*self._upsert(user))
        held = dict(self.sessions.held_tokens()) if redis_was_emptied else {}
        held.update(self._unwritten_tokens)
        for digest, token_record in held.items():
            pipe.execute_command(*self._token_write(digest, token_record))
        for digest in self._unsent_revocations:
            pipe.execute_command(*self._revoke(digest))
        await pipe.execute()
        self._unwritten_tokens.clear()
        self._unsent_revocations.clear()
        await self._drop_tokens_revoked_meanwhile()
        self._load_mirror(await client.hgetall(self.keys.clients))  # type: ignore[arg-type]  # decoded

    async def _drop_tokens_revoked_meanwhile(self) -> None:
        """Unverify local holders of tokens that vanished while this process heard nothing."""
        assert self._client is not None
        digests = [digest for digest, _ in self.sessions.held_tokens()]
        if not digests:
            return
        exists = await self._client.mget([self.keys.token(digest) for digest in digests])
        for digest, value in zip(digests, exists, strict=True):
            if value is None:
                self.sessions.revoked(digest)

    def _load_mirror(self, records: Mapping[str, str]) -> None:
        remote = {UUID(cid): json.loads(record) for cid, record in records.items()}
        for cid, user in list(self.presence.online.items()):
            if isinstance(user, RemoteUser) and (cid not in remote or remote[cid]["w"] == self.worker_id):
                self._forget_remote(cid)
        for cid, record in remote.items():
            self._mirror(cid, record)

    def _new_client(self, socket_timeout: float | None) -> Redis:
        options: dict[str, Any] = {}
        if urlsplit(self.url).scheme != "unix":  # TCP keepalive: a unix socket has none
            options["socket_keepalive"] = True
        return Redis.from_url(
            self.url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),  # every failure surfaces here: no silent reconnect
            decode_responses=True,
            **options,
        )

    def _heartbeat(self) -> tuple[Any, ...]:
        """The command that records this process's heartbeat, reaps dead ones and probes its own channel."""
        dead_after_ms = int(self.dead_after * 1000)
        own = self.keys.worker_channel(self.worker_id)
        args = (self.worker_id, dead_after_ms, self.keys.worker_prefix, self.keys.all, own)
        return ("EVALSHA", HEARTBEAT.sha, 2, self.keys.workers, self.keys.clients, *args)

    async def _heartbeat_forever(self) -> None:
        """Beat, reap dead processes, and check that this process's listener hears its own channel."""
        while True:
            await asyncio.sleep(self.heartbeat)
            if not self.health.connected:
                continue
            try:
                heard, reaped = await self._call(self._heartbeat(), "heartbeat")
            except BackendUnavailable:
                continue  # the writer has marked the connection lost
            if reaped:
                logger.warning("removed %d clients of processes that stopped beating", reaped)
            if not heard and self.health.connected:
                logger.error("this process's listener is not subscribed in Redis; reconnecting")
                self._rebuild.set()

    # what the other processes say

    def _handle(self, data: str) -> None:
        try:
            if data.startswith('{"t":"h"'):  # a history room's event, then a newline and the message
                head, _, message = data.partition("\n")
                event = json.loads(head)
                position = Position(event["e"], event["n"])
                self._heard_in_room(event["r"], frozenset(map(UUID, event["x"])), position, message)
                return
            event = json.loads(data)
            kind = event["t"]
            if kind == "f":
                fence = self._fences.get(event["k"])
                if fence is not None and not fence.done():
                    fence.set_result(None)
            elif kind == "up":
                self._mirror(UUID(event["c"]), event["d"])
            elif kind == "rm":
                self._removed(UUID(event["c"]))
            elif kind == "b":
                if event["o"] != self.worker_id:
                    self._deliver_to_room(event["r"], frozenset(map(UUID, event["x"])), _unwire(event))
            elif kind == "u":
                if event["o"] != self.worker_id:
                    self._deliver_to_user(event["u"], _unwire(event))
            elif kind == "s":
                self._deliver_direct(UUID(event["c"]), _unwire(event))
            elif kind in ("j", "l"):
                self._join_forwarded(UUID(event["c"]), event["r"], kind == "j")
            elif kind == "rv":
                self.sessions.revoked(event["d"])
        except Exception:
            self.health.listener_errors += 1
            logger.exception("cannot handle a message from Redis (%d bytes)", len(data))

    def _mirror(self, client_id: UUID, record: dict[str, Any]) -> None:
        """Apply another process's record of one of its clients to the mirror."""
        if record["w"] == self.worker_id:
            return
        user = self.presence.online.get(client_id)
        if user is None:
            address = record.get("ra")
            socket = RemoteSocket(client_id, record["w"], tuple(address) if address else address, self.deliver)
            user = RemoteUser(socket, None, {}, self.presence)
            self.presence.add(user)
        elif not isinstance(user, RemoteUser):
            return  # a stale record of a client now connected here
        user_id = record["u"]
        if user.id != user_id:
            if user.id is not None:
                self.presence.remove_verified(user.id, user)
            user._refresh(user_id, record["a"])
            if user_id is not None:
                self.presence.add_verified(user)
        else:
            user._refresh(user_id, record["a"])
        rooms, joined = set(record["r"]), self.presence.rooms_of(client_id)
        for room in joined - rooms:
            self.presence.leave(user, room)
        for room in rooms - joined:
            self.presence.join(user, room)

    def _removed(self, client_id: UUID) -> None:
        local = self._local.get(client_id)
        if local is not None:  # reaped while this process could not beat: say it is still here
            logger.warning("client %s was removed from Redis while connected here; announcing it again", client_id)
            self._publish(local)
            return
        self._forget_remote(client_id)

    def _forget_remote(self, client_id: UUID) -> None:
        user = self.presence.online.get(client_id)
        if not isinstance(user, RemoteUser):
            return
        user.socket.gone = True
        if user.id is not None:
            self.presence.remove_verified(user.id, user)
        self.presence.remove(user)

    def _deliver_to_room(self, room: str | None, exclude: frozenset[UUID], message: str | bytes) -> None:
        """Send to this process's members of ``room`` (its every client if ``None``) but ``exclude``."""
        members = self.presence.online if room is None else self.presence.members(room)
        local = self._local
        send_now((user.socket for cid, user in members.items() if cid in local and cid not in exclude), message)

    def _deliver_direct(self, client_id: UUID, message: str | bytes) -> None:
        user = self._local.get(client_id)
        if user is None:
            self.health.dropped_deliveries += 1
            now = time.monotonic()
            if now - self._last_drop_log >= 10:  # one line per 10 s at most
                self._last_drop_log = now
                logger.warning(
                    "dropped messages for clients that had left this process (%d so far; the latest for %s)",
                    self.health.dropped_deliveries,
                    client_id,
                )
            return
        send_now((user.socket,), message)

    def _join_forwarded(self, client_id: UUID, room: str, join: bool) -> None:
        user = self._local.get(client_id)
        if user is None:
            return
        if join and self.keeps_history(room):
            catch_up = self._join_held(user, room)  # now, in the order the processes asked
            self._in_background(self._finish_join(user, room, catch_up), f"joining {client_id} to {room!r}")
            return
        if join:
            self.presence.join(user, room)
        else:
            self.presence.leave(user, room)
            self._untrack_if_empty(room)
        self._publish(user)

    def _in_background(self, work: Coroutine[Any, Any, Any], what: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                logger.exception("failed %s", what)

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _idle_ms(history: History) -> int:
    return int(max(HISTORY_IDLE, history.ttl or 0) * 1000)


def _wire(message: str | bytes) -> dict[str, Any]:
    if isinstance(message, str):
        return {"m": message}
    return {"m": base64.b64encode(message).decode(), "bin": True}


def _unwire(event: dict[str, Any]) -> str | bytes:
    message: str = event["m"]
    return base64.b64decode(message) if event.get("bin") else message


async def _confirmed(pubsub: PubSub, count: int) -> list[str]:
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


async def _close(pubsub: PubSub) -> None:
    """Close a subscriber and its connection (redis-py does not close a replaced one by itself)."""
    with contextlib.suppress(Exception):
        aclose: Callable[[], Awaitable[None]] = pubsub.aclose  # redis-py < 8.2 leaves it unannotated
        await aclose()
    with contextlib.suppress(Exception):
        await pubsub.connection_pool.disconnect()


def _redacted(url: str) -> str:
    """The URL without its password (``user:password@`` or ``?password=``), for logs and errors."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.hostname or ""
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else ""))
    if parts.query:
        query = parse_qsl(parts.query, keep_blank_values=True)
        parts = parts._replace(query=urlencode([(k, "***" if k == "password" else v) for k, v in query], safe="*"))
    return urlunsplit(parts)


def _unavailable(what: str) -> BackendUnavailable:
    """The error for the client: what failed, and nothing of Redis's address or the cause (those are logged)."""
    return BackendUnavailable(f"{what} failed: the shared backend is unavailable, try again later")


def _reason(exc: BaseException) -> str:
    """``Type: message``, for the middle of a line of ours: without the message's final period."""
    message = str(exc).rstrip().removesuffix(".")
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
