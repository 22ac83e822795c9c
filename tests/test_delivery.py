"""Fan-out to local connections (`websuckets.delivery.send_now`): framed once, never awaiting a receiver.

Both tests are part of the backend contract: a broadcast goes through the backend, so they run on every
backend of tests/conftest.py's list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from unittest import mock

from websockets.asyncio.client import connect

from websuckets import ClientEvent, Session, WebSuckets, delivery
from websuckets.backends import Backend
from websuckets.testing import TestClient

BackendFactory = Callable[[], Backend]


async def test_a_fan_out_is_framed_once_and_reaches_every_kind_of_connection(make_backend: BackendFactory) -> None:
    """Plain connections share one frame; a compressed one gets its own, and all read the same event."""
    async with TestClient(WebSuckets(backend=make_backend(), compression="deflate"), real=True) as client:
        plain = [await connect(client.url, compression=None) for _ in range(3)]
        deflated = await connect(client.url)  # offers permessage-deflate, which the server accepts
        assert deflated.protocol.extensions
        await _until(lambda: len(Session.online) == 4)
        framed = mock.Mock(wraps=delivery._frame)
        with mock.patch.object(delivery, "_frame", framed):
            await Session.broadcast(ClientEvent("news", "é" * 100))
        assert framed.call_count == 1
        for ws in [*plain, deflated]:
            assert await asyncio.wait_for(ws.recv(), 2) == ClientEvent("news", "é" * 100)
            await ws.close()


async def test_a_client_that_stops_reading_is_dropped_and_the_others_go_on(make_backend: BackendFactory) -> None:
    """A receiver with over SLOW_CONSUMER_BUFFER unread is closed (1013, then dropped); the others get every message."""
    async with TestClient(WebSuckets(backend=make_backend()), real=True) as client:
        reader = await connect(client.url, max_size=None)
        stuck = await connect(client.url, max_size=None, max_queue=1)  # stops reading after a frame or two
        await _until(lambda: len(Session.online) == 2)
        closed_before = delivery.stats.slow_consumers_closed
        big = ClientEvent("blob", "x" * 65536)
        for _ in range(2000):  # bounded: the stuck client is over the limit long before
            await Session.broadcast(big)
            assert await asyncio.wait_for(reader.recv(), 2) == big
            if delivery.stats.slow_consumers_closed > closed_before:
                break
        else:
            raise AssertionError("the client that stopped reading was never closed")
        await _until(lambda: len(Session.online) == 1)
        await Session.broadcast(ClientEvent("still", "here"))
        assert await asyncio.wait_for(reader.recv(), 2) == ClientEvent("still", "here")
        await reader.close()
        stuck.transport.abort()


async def _until(check: Callable[[], bool]) -> None:
    """Poll ``check`` until it is true, 5 s at most."""
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not true within 5 s")
