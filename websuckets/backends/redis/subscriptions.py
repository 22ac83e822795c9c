"""The channels the listener hears beyond its own: which are wanted, which Redis has confirmed.

A process hears a room's channel only while it has members in the room. Joins and leaves
change what is *wanted* at any time and in any order; one `sync` at a time sends Redis the
difference (UNSUBSCRIBE, then SUBSCRIBE), so whatever the interleaving, what Redis holds
becomes what is wanted. A channel is *heard* once Redis has confirmed every SUBSCRIBE sent for
it: from then on, every message published on it reaches the listener, in order with the
others. After a reconnection the listener subscribes to all that is wanted at once
(`attach`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Protocol


class Subscriber(Protocol):
    """What `Subscriptions` sends through: redis-py's ``PubSub``, or a test's fake."""

    async def subscribe(self, *channels: str) -> None: ...

    def unsubscribe(self, *channels: str) -> Awaitable[object]: ...


class Subscriptions:
    """The wanted channels, and what the listener's connection holds of them."""

    def __init__(self) -> None:
        self.wanted: set[str] = set()
        self._subscriber: Subscriber | None = None
        self._sent: set[str] = set()
        """Channels subscribed to on the current connection, confirmed or not."""
        self._unconfirmed: dict[str, int] = {}
        """SUBSCRIBEs sent and not confirmed yet, by channel."""
        self._unsubscribing: dict[str, int] = {}
        """UNSUBSCRIBEs sent and not confirmed yet, by channel: any other is Redis's own (a slot moved)."""
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()

    def heard(self, channel: str) -> bool:
        """Whether every message published on ``channel`` from now on reaches the listener."""
        return channel in self._sent and channel not in self._unconfirmed

    def waiter(self, channel: str) -> asyncio.Future[None]:
        """Done once ``channel`` is `heard` (wanted: `sync` then subscribes to it)."""
        self.wanted.add(channel)
        waiter = self._waiters.get(channel)
        if waiter is None or waiter.done():
            waiter = self._waiters[channel] = asyncio.get_running_loop().create_future()
            if self.heard(channel):
                waiter.set_result(None)
        return waiter

    def discard(self, channel: str) -> bool:
        """Stop wanting ``channel``; whether a `sync` is needed to tell Redis."""
        self.wanted.discard(channel)
        return channel in self._sent

    async def sync(self) -> None:
        """Make the connection's subscriptions what is wanted; a failure is the connection's (raised)."""
        async with self._lock:
            subscriber = self._subscriber
            if subscriber is None:
                return  # `attach` subscribes to what is wanted then
            gone, new = self._sent - self.wanted, self.wanted - self._sent
            if gone:  # a SUBSCRIBE of theirs not confirmed yet still will be: it stays counted
                self._sent -= gone
                for channel in gone:
                    self._unsubscribing[channel] = self._unsubscribing.get(channel, 0) + 1
                await subscriber.unsubscribe(*gone)
            if new:
                self._sent |= new
                for channel in new:
                    self._unconfirmed[channel] = self._unconfirmed.get(channel, 0) + 1
                await subscriber.subscribe(*new)

    def confirmed(self, channel: str) -> None:
        """Redis confirmed a SUBSCRIBE to ``channel`` (the listener heard ``subscribe``)."""
        left = self._unconfirmed.get(channel, 0) - 1
        if left > 0:
            self._unconfirmed[channel] = left
            return
        self._unconfirmed.pop(channel, None)
        if channel in self._sent:
            self._wake(channel)

    def unsubscribed(self, channel: str) -> bool:
        """Redis confirmed an UNSUBSCRIBE from ``channel``: whether this process asked for it (on a cluster,
        Redis unsubscribes the subscribers of a slot that moved by itself)."""
        left = self._unsubscribing.get(channel, 0)
        if left > 1:
            self._unsubscribing[channel] = left - 1
        else:
            self._unsubscribing.pop(channel, None)
        return left > 0

    def attach(self, subscriber: Subscriber, subscribed: Iterable[str]) -> None:
        """A new connection, subscribed (and confirmed) to ``subscribed`` already."""
        self._subscriber = subscriber
        self._sent = set(subscribed)
        self._unconfirmed.clear()
        self._unsubscribing.clear()
        for channel in self._sent:
            self._wake(channel)

    def detach(self) -> None:
        """The connection is lost: nothing is heard until the next `attach`."""
        self._subscriber = None
        self._sent.clear()
        self._unconfirmed.clear()
        self._unsubscribing.clear()

    def _wake(self, channel: str) -> None:
        waiter = self._waiters.pop(channel, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
