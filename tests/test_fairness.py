"""Fairness: one connection's pipelined frames never hold the event loop for the whole batch."""

import asyncio

from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, WebSuckets
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


def _unlimited() -> dict[str, object]:
    """Options turning off every per-connection limit that could refuse a burst of commands."""
    return {"rate_limit": None}
