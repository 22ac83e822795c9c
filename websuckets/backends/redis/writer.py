"""The writer of the link to Redis: every command of the process, in the order it was made, pipelined.

A command is queued (`Writer.enqueue`: nobody waits; `Writer.call`: its caller waits for the
answer, ``timeout`` seconds at most) and the writer task sends what is queued in batches of one
pipeline, on the command connection, while Redis answers (``up``); during an outage the commands
wait in the queue (bounded) and the link's rebuild runs before any of them. A caller that finds
nothing queued and nothing on its way sends its command itself, as a batch of one, and the writer
waits for it: the order is the same, without a switch to the writer task and back (the latency of
one direct send to another process's client). A command whose batch
failed, or that Redis refused, is counted, logged (`faults.FailureLog`) and raised to whoever
waits for it, named for the client (`faults`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.exceptions import ClusterDownError, NoScriptError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..base import BackendHealth
from .address import Client
from .faults import FailureLog, maybe_written, never_sent, reason, refusal, unavailable

MAX_QUEUED = 100_000
"""Writes nobody waits for that may queue up while Redis is away; the oldest are dropped past it."""

BATCH = 512
"""The most commands of one pipeline."""

Command = tuple[Any, ...]
"""A Redis command and its arguments, as ``execute_command`` takes them."""


class _Op:
    """One command for the writer; ``future`` is set when somebody awaits its answer."""

    __slots__ = ("args", "future", "what")

    def __init__(self, args: Command, future: asyncio.Future[Any] | None, what: str) -> None:
        self.args = args
        self.future = future
        self.what = what


class Writer:
    """The ordered writer of one process.

    Args:
        client: the command connection (the link's, as it is at each batch).
        lost: told when the connection fails (a batch that raised, or a result that says so).
    """

    def __init__(
        self,
        timeout: float,
        health: BackendHealth,
        failures: FailureLog,
        client: Callable[[], Client],
        lost: Callable[[BaseException], None],
    ) -> None:
        self.timeout = timeout
        self.health = health
        self.failures = failures
        self._client = client
        self._lost = lost
        self._queue: deque[_Op] = deque()
        self._sending: list[_Op] = []
        """The batch on its way to Redis: a command of it that gets no answer may have run."""
        self._sent = asyncio.Event()
        """Set while no batch is on its way: the next one waits for it, as order needs."""
        self._queued = asyncio.Event()
        self.up = asyncio.Event()
        """Set while Redis answers (connected and rebuilt): the writer waits on it."""
        self.reset()

    def reset(self) -> None:
        """New events, for a start on another event loop."""
        self._sent = asyncio.Event()
        self._sent.set()
        self._queued = asyncio.Event()
        self.up = asyncio.Event()

    def enqueue(self, args: Command, what: str, on_fail: Callable[[], None] | None = None) -> None:
        """Queue a write nobody waits for; while Redis is away it waits in the queue (bounded)."""
        op = _Op(args, None, what)
        if on_fail is not None:
            op.future = asyncio.get_running_loop().create_future()
            op.future.add_done_callback(lambda future: future.exception() is not None and on_fail())
        if len(self._queue) >= MAX_QUEUED:
            self.fail([self._queue.popleft()], f"over {MAX_QUEUED} writes queued while Redis is away", "QueueFull")
        self._queue.append(op)
        self._queued.set()

    async def call(self, args: Command, what: str) -> Any:
        """Run one command after every one queued before it; `BackendUnavailable` at once while
        Redis is known to be away, or past ``timeout``: then never sent, or `faults.MaybeWritten` if it
        was sent (it may have run)."""
        if not self.health.connected:
            self.fail([], "Redis is not connected", None)  # the loss noted its kind
            raise unavailable(what)
        op = _Op(args, asyncio.get_running_loop().create_future(), what)
        assert op.future is not None
        if self._idle():  # nothing to wait behind: the caller sends its own batch of one, without a task switch
            return await self._write_own(op)
        self._queue.append(op)
        self._queued.set()
        try:
            async with asyncio.timeout(self.timeout):
                return await op.future
        except TimeoutError:
            self.fail([], f"no answer within {self.timeout} s")
            raise (maybe_written(what) if op in self._sending else unavailable(what)) from None

    async def _write_own(self, op: _Op) -> Any:
        """Send ``op`` from the caller's task, as a batch of one; its answer. redis-py may swallow a
        cancellation that comes while a command is on its way (the command still runs): it is raised
        here, after the answer, so that a handler's timeout or a shutdown still stops the caller."""
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        await self._write([op])
        if task.cancelling() > cancelling:
            raise asyncio.CancelledError
        assert op.future is not None
        return op.future.result()

    def _idle(self) -> bool:
        """Whether Redis answers and no command is queued or on its way."""
        return self.up.is_set() and not self._queue and self._sent.is_set()

    async def wait_up(self, within: float) -> bool:
        """Whether Redis answers (connected, rebuilt) now or within ``within`` seconds."""
        if not self.up.is_set():
            try:
                async with asyncio.timeout(within):
                    await self.up.wait()
            except TimeoutError:
                return False
        return True

    async def write_forever(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._queue:
                await self._turn()
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), BATCH))]
                batch = [op for op in batch if op.future is None or not op.future.done()]  # timed out: not sent
                if batch:
                    await self._write(batch)
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        # cancelled while its timeout expired: the cancellation came out as the timeout
                        raise asyncio.CancelledError

    async def _turn(self) -> None:
        """Wait until Redis answers (writes wait out an outage; the rebuild runs first) and no caller's
        own batch (`call`) is on its way."""
        while not (self.up.is_set() and self._sent.is_set()):
            await self.up.wait()
            await self._sent.wait()

    async def _write(self, batch: list[_Op]) -> None:
        self._sending = batch
        self._sent.clear()
        try:
            async with asyncio.timeout(self.timeout):
                pipe = self._client().pipeline(transaction=False)
                for op in batch:
                    pipe.execute_command(*op.args)
                results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            self.fail(batch, reason(exc), type(exc).__name__, sent=not never_sent(exc))
            self._lost(exc)
            return
        finally:
            self._sending = []
            self._sent.set()
        for op, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                self.fail([op], reason(result), type(result).__name__, refused_with=result)
                if isinstance(result, NoScriptError | RedisConnectionError | RedisTimeoutError | ClusterDownError):
                    self._lost(result)  # Redis restarted under us (the rebuild loads the scripts), or a cluster's node
            elif op.future is not None and not op.future.done():
                op.future.set_result(result)

    def fail(
        self,
        batch: list[_Op],
        why: str,
        kind: str | None = "TimeoutError",
        refused_with: Exception | None = None,
        sent: bool = False,
    ) -> None:
        """Count and log failed operations; those awaited raise `BackendUnavailable` (`faults.MaybeWritten`
        if ``sent`` and unanswered), or what Redis's ``refused_with`` answer means for the client
        (`faults.refusal`)."""
        count = max(len(batch), 1)
        self.health.failed_operations += count
        if kind is not None:
            self.note_error(kind)
        for op in batch:
            if op.future is not None and not op.future.done():
                if refused_with is not None:
                    op.future.set_exception(refusal(op.what, refused_with))
                else:
                    op.future.set_exception(maybe_written(op.what) if sent else unavailable(op.what))
        self.failures.add(count, why)

    def note_error(self, kind: str) -> None:
        """The latest failure's kind and time, for `BackendHealth` (and so ``/readyz``)."""
        self.health.last_error, self.health.last_error_at = kind, time.time()
