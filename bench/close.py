"""Time to close: a client over its rate limit against an idle client that the server closes.

The README's first example (``examples/quickstart.py``, the default rate limit: 100 commands/s,
bursts of 200, 1008 after 200 more) serves on 127.0.0.1, with one more command, ``bench bye``,
whose handler closes its own connection. Two clients, one after the other, each timed from its
last frame sent to its connection closed (the close handshake done and the TCP connection gone):

- ``idle``: sends ``bench bye`` and reads; the server closes a connection that has nothing queued.
  The reference: what a close costs on this machine.
- ``flood``: sends ``--commands`` ``user hello`` at once, then reads everything up to the close.
  The server answers the burst, refuses the next ones with ``rate_limited`` and closes with 1008
  while hundreds of the client's frames are still unread; it must read past them to the
  client's close frame (`websuckets.connection.close_draining`), else the close ends when
  websockets' ``close_timeout`` (10 s) runs out.

It prints the median of ``--repeat`` runs of each and their ratio: about 40,000 before the fix
(the flood's close took 10 s), about 40 after it (12 ms, most of it the 600 frames being read
and the 400 replies written and read).

    python bench/close.py [--commands 600] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from websuckets import CommandGroup, WebSuckets

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"


def readme_app() -> WebSuckets:
    """The README's app, and ``bench bye``: the server closes the connection that sends it."""
    spec = importlib.util.spec_from_file_location("quickstart", QUICKSTART)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: WebSuckets = module.app
    group = CommandGroup("bench")

    @group.command("bye")
    async def bye(socket: ServerConnection) -> None:
        await socket.close(CloseCode.POLICY_VIOLATION, "bye")

    app.include_command_group(group)
    return app


async def until_closed(client: ClientConnection) -> list[Any]:
    """Every frame up to the close, once the connection is closed."""
    frames = []
    try:
        while True:
            frames.append(await client.recv())
    except ConnectionClosed:
        pass
    await client.wait_closed()
    return frames


async def idle(url: str) -> tuple[float, int | None, int]:
    async with connect(url) as client:
        await client.send(json.dumps({"event": "bench bye"}))
        started = time.perf_counter()
        frames = await until_closed(client)
        return time.perf_counter() - started, client.close_code, len(frames)


async def flood(url: str, commands: int) -> tuple[float, int | None, int]:
    frame = json.dumps({"event": "user hello", "payload": {"nickname": "flood"}})
    async with connect(url) as client:
        for _ in range(commands):
            await client.send(frame)
        started = time.perf_counter()
        frames = await until_closed(client)
        limited = sum('"rate_limited"' in str(frame) for frame in frames)
        return time.perf_counter() - started, client.close_code, limited


async def main(commands: int, repeat: int) -> None:
    app = readme_app()
    async with app, app.serve("127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        idles, floods = [], []
        for _ in range(repeat):
            idles.append(await idle(url))
            floods.append(await flood(url, commands))
    idle_s = statistics.median(seconds for seconds, _, _ in idles)
    flood_s = statistics.median(seconds for seconds, _, _ in floods)
    print(f"runs: {repeat} (median); flood: {commands} commands at once, the README app's default rate limit")
    print("| client | close code | rate_limited replies | time to close |")
    print("|---|---:|---:|---:|")
    print(f"| idle, closed by its command | {idles[0][1]} | | {idle_s * 1e3:.2f} ms |")
    print(f"| flood, closed by the rate limit | {floods[0][1]} | {floods[0][2]} | {flood_s * 1e3:.2f} ms |")
    print(f"ratio flood / idle: {flood_s / idle_s:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.commands, arguments.repeat))
