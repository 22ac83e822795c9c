"""Keepalive pings for every connection of an event loop, from shared timers: no task per connection.

``websockets`` pings each connection from a task of its own that sleeps ``ping_interval``
seconds, sends a ping and waits for its pong under a timeout: about 1.4 KiB held for as long as
an idle connection stays open (the task, its coroutine, a sleeping future and its timer), and a
task wake-up or two per ping. Here the connections whose next step falls in the same slot of
`RESOLUTION` seconds share a slot, and only the earliest slot due holds a loop timer (one
``loop.call_at`` at a time, however many connections and slots); a slot is a dict, so a
connection that closes leaves its slot at once (`forget`), and a slot left empty holds nothing
but its number in the heap of slots due.

A connection's keepalive is two steps, in turn:

1. **ping**: send a ping (the pong resolves the future that ``websockets`` keeps for it, and
   updates ``latency``), then check it ``ping_timeout`` seconds later;
2. **check**: the pong came: ping again ``ping_interval`` seconds after the last ping; it did not:
   the peer is dead, and the TCP connection is aborted at once (a dead peer would never answer a
   close frame). Without ``ping_timeout`` the check is skipped: pings go on every ``ping_interval``.

A step runs up to `RESOLUTION` seconds late, never early.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
import struct
import weakref
from typing import Any, Protocol

from websockets.frames import CloseCode
from websockets.protocol import Protocol as WebSocketProtocol
from websockets.protocol import State

logger = logging.getLogger("websuckets.connection")

RESOLUTION = 0.05
"""Seconds: the steps due within one slot of this length run together, at its end."""

PING, CHECK = False, True
"""What a connection's next step is, as its slot holds it."""


class Pinged(Protocol):
    """What the keepalive uses of a connection: ``websockets``' ``Connection``, and three slots of ours."""

    @property
    def id(self) -> Any: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def protocol(self) -> WebSocketProtocol: ...
    @property
    def transport(self) -> asyncio.Transport: ...
    @property
    def ping_interval(self) -> float | None: ...
    @property
    def ping_timeout(self) -> float | None: ...
    @property
    def pending_pings(self) -> dict[bytes, tuple[asyncio.Future[float], float]]: ...

    keepalive_slot: int
    """The slot that holds the connection's next step."""
    keepalive_pong: asyncio.Future[float] | None
    """The pong of the ping that the next check looks at."""
    keepalive_sent: float
    """When that ping was sent (the loop's clock)."""

    def send_data(self) -> None: ...


class Keepalive:
    """The keepalive of every connection of one event loop.

    It holds no reference to the loop (each connection has its own): `keepalive`'s table of one
    per loop would keep every loop alive otherwise.
    """

    def __init__(self) -> None:
        self._slots: dict[int, dict[Pinged, bool]] = {}
        self._due: list[int] = []
        """A heap of the slots' numbers (a slot left empty keeps its number here until it is due)."""
        self._armed: set[int] = set()
        """The slots a loop timer is set for: the earliest due, and rarely an earlier one set since."""

    def start(self, connection: Pinged) -> None:
        """Ping ``connection`` every ``ping_interval`` seconds from now on (until it closes)."""
        assert connection.ping_interval is not None
        self._schedule(connection, connection.ping_interval, PING)

    def forget(self, connection: Pinged) -> None:
        """``connection`` closed: take it out of its slot (an empty slot is dropped)."""
        index = connection.keepalive_slot
        slot = self._slots.get(index)
        if slot is not None:
            slot.pop(connection, None)
            if not slot:
                del self._slots[index]

    def _schedule(self, connection: Pinged, delay: float, step: bool) -> None:
        loop = connection.loop
        index = math.ceil((loop.time() + delay) / RESOLUTION)
        slot = self._slots.get(index)
        if slot is None:
            slot = self._slots[index] = {}
            heapq.heappush(self._due, index)
            if not self._armed or index < min(self._armed):
                self._arm(loop, index)
        slot[connection] = step
        connection.keepalive_slot = index

    def _arm(self, loop: asyncio.AbstractEventLoop, index: int) -> None:
        self._armed.add(index)
        loop.call_at(index * RESOLUTION, self._run, index)

    def _run(self, index: int) -> None:
        """Run every slot due by ``index``, then set the timer for the next slot that holds a connection."""
        self._armed.discard(index)
        due = self._due
        while due and due[0] <= index:
            self._run_slot(self._slots.pop(heapq.heappop(due), {}))
        while due and due[0] not in self._slots:
            heapq.heappop(due)  # emptied by `forget` before it was due
        if due and (not self._armed or due[0] < min(self._armed)):
            self._arm(asyncio.get_running_loop(), due[0])

    def _run_slot(self, slot: dict[Pinged, bool]) -> None:
        for connection, step in slot.items():
            if connection.protocol.state is not State.OPEN:
                continue  # closing: websockets' own close timeout takes it from here
            try:
                if step is PING:
                    self._ping(connection)
                else:
                    self._check(connection)
            except Exception:
                logger.error("keepalive ping failed", exc_info=True)

    def _ping(self, connection: Pinged) -> None:
        """What ``Connection.ping()`` does, without its task: the pong resolves ``websockets``' own future."""
        pending = connection.pending_pings
        data = struct.pack("!I", random.getrandbits(32))
        while data in pending:
            data = struct.pack("!I", random.getrandbits(32))
        loop = connection.loop
        pong = loop.create_future()
        pending[data] = (pong, loop.time())
        connection.protocol.send_ping(data)
        connection.send_data()
        if connection.ping_timeout is None:
            self._schedule(connection, connection.ping_interval or 0.0, PING)
            return
        connection.keepalive_pong = pong
        connection.keepalive_sent = loop.time()
        self._schedule(connection, connection.ping_timeout, CHECK)

    def _check(self, connection: Pinged) -> None:
        pong = connection.keepalive_pong
        connection.keepalive_pong = None
        if pong is not None and pong.done():
            due = connection.keepalive_sent + (connection.ping_interval or 0.0)
            self._schedule(connection, max(due - connection.loop.time(), 0.0), PING)
            return
        logger.info("client %s did not answer a ping within %.1f s: dropped", connection.id, connection.ping_timeout)
        connection.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        connection.transport.abort()  # a dead peer never answers a close frame: do not wait for one


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Keepalive] = weakref.WeakKeyDictionary()


def keepalive(loop: asyncio.AbstractEventLoop) -> Keepalive:
    """The keepalive of ``loop``'s connections (made at its first connection)."""
    found = _per_loop.get(loop)
    if found is None:
        found = _per_loop[loop] = Keepalive()
    return found
