"""Fairness: one connection's pipelined frames never hold the event loop for the whole batch."""

import asyncio
import json
from unittest import mock

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, WebSuckets
from websuckets.connection import READ_SIZE, GuardedConnection
from websuckets.dispatcher import YIELD_EVERY
from websuckets.testing import TestClient

FRAMES = 20 * YIELD_EVERY


async def test_other_tasks_run_between_frames_of_one_batch() -> None:
    """Frames that arrive together are handled with the loop handed to other tasks in between."""
    ticks = 0
    seen: list[int] = []
    all_seen = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    app = WebSuckets(**_unlimited())
    group = CommandGroup("x")

    @group.command("tick")
    async def tick(socket: ServerConnection) -> None:  # never awaits: a handler that is pure CPU
        seen.append(ticks)
        if len(seen) == FRAMES:
            all_seen.set()

    app.include_command_group(group)
    async with TestClient(app) as client:
        alice = await client.connect()
        frame = '{"event": "x tick"}'
        for _ in range(FRAMES):  # in memory, all of them are queued before the server reads one
            await alice.send_raw(frame)
        task = asyncio.create_task(ticker())
        try:
            await asyncio.wait_for(all_seen.wait(), 5)
        finally:
            task.cancel()
    # without the yields every frame sees the same tick count: the ticker never ran meanwhile
    assert len(set(seen)) >= FRAMES // YIELD_EVERY


async def test_a_pipelining_client_is_parsed_one_small_read_at_a_time() -> None:
    """However much a client has sent, one callback parses at most READ_SIZE bytes of its frames.

    websockets parses every frame of a read in one callback, without yielding; asyncio reads
    256 KiB at once: about 3,000 small frames that no other connection could interrupt.
    """
    assert READ_SIZE is not None
    reads: list[int] = []
    original = GuardedConnection.data_received

    def counted(self: GuardedConnection, data: bytes) -> None:
        reads.append(len(data))
        original(self, data)

    app = WebSuckets(**_unlimited())
    group = CommandGroup("x")
    count = 0

    @group.command("tick")
    async def tick(socket: ServerConnection) -> None:
        nonlocal count
        count += 1
        if count == FLOOD:
            await socket.send(ClientEvent("done"))

    app.include_command_group(group)
    frame = json.dumps({"event": "x tick", "payload": "x" * 60}).encode()
    with mock.patch.object(GuardedConnection, "data_received", counted):
        async with TestClient(app, real=True) as client, connect(client.url, compression=None) as ws:
            for _ in range(FLOOD):  # queued in the client, then written in one go
                ws.protocol.send_text(frame)
            ws.send_data()
            assert json.loads(await asyncio.wait_for(ws.recv(), 30))["event"] == "done"
    assert sum(reads) > 16 * READ_SIZE, "the flood was sent"
    assert max(reads) <= READ_SIZE


FLOOD = 5_000
"""Frames of about 90 bytes: 450 KiB, more than any single read of asyncio's."""


def _unlimited() -> dict[str, object]:
    """Options turning off every per-connection limit that could refuse a burst of commands."""
    return {"rate_limit": None}
