"""Fairness: one connection's pipelined frames never hold the event loop for the whole batch."""

import asyncio
import json
import queue
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from unittest import mock

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Context, WebSuckets
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


@pytest.mark.parametrize("transport", ["asyncio", "tls", "uvloop"])
async def test_a_pipelining_client_is_parsed_a_slice_at_a_time(transport: str, tmp_path: Path) -> None:
    """However much a client has sent, websockets parses at most READ_SIZE bytes of it per callback, in order.

    websockets parses every frame of the data it is given in one callback, without yielding;
    a socket read brings up to 256 KiB: about 3,000 small frames that no other connection
    could interrupt. asyncio's own transport reads less; TLS and uvloop read as much as ever,
    and the connection hands it over in slices.
    """
    assert READ_SIZE is not None
    reads: list[int] = []
    parsed: list[int] = []
    original_read, original_parse = GuardedConnection.data_received, Connection.data_received

    def counted_read(self: GuardedConnection, data: bytes) -> None:
        reads.append(len(data))
        original_read(self, data)

    def counted_parse(self: Connection, data: bytes) -> None:
        if isinstance(self, GuardedConnection):  # not the test's client
            parsed.append(len(data))
        original_parse(self, data)

    handled: list[int] = []
    app = WebSuckets(**_unlimited())
    group = CommandGroup("x")

    @group.command("hold")
    async def hold(socket: ServerConnection) -> None:
        time.sleep(0.3)  # noqa: ASYNC251  (on purpose: the flood piles up in the socket meanwhile, read at once after)

    @group.command("tick")
    async def tick(socket: ServerConnection, ctx: Context) -> None:
        handled.append(ctx.payload)
        if len(handled) == FLOOD:
            await socket.send(ClientEvent("done"))

    app.include_command_group(group)
    padding = "x" * 60
    frames = [json.dumps({"event": "x hold"}).encode()]
    frames += [json.dumps({"event": "x tick", "payload": n, "pad": padding}).encode() for n in range(FLOOD)]
    with (
        mock.patch.object(GuardedConnection, "data_received", counted_read),
        mock.patch.object(Connection, "data_received", counted_parse),
    ):
        async with serving(app, transport, tmp_path) as (url, client_ssl):
            await flood(url, client_ssl, frames)
    assert handled == list(range(FLOOD)), "every frame handled, in order"
    assert max(parsed) <= READ_SIZE
    if transport != "asyncio":
        assert max(reads) > READ_SIZE, "the transport read more at once: the slices were ours"


FLOOD = 5_000
"""Frames of about 100 bytes: 500 KiB, more than any single read."""


async def flood(url: str, client_ssl: ssl.SSLContext | None, frames: list[bytes]) -> None:
    """Queue every frame in the client, write them in one go, and wait for the server's "done"."""
    async with connect(url, compression=None, ssl=client_ssl, max_size=None) as ws:
        for frame in frames:
            ws.protocol.send_text(frame)
        ws.send_data()
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["event"] == "done"


@asynccontextmanager
async def serving(app: WebSuckets, transport: str, tmp_path: Path) -> AsyncIterator[tuple[str, ssl.SSLContext | None]]:
    """The app on 127.0.0.1: plain, over TLS, or on uvloop in a thread of its own; its URL and client context."""
    if transport == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="the uvloop extra is not installed")
        started: queue.Queue[str] = queue.Queue()
        stop = threading.Event()

        async def serve() -> None:
            async with app, app.serve("127.0.0.1", 0) as server:
                started.put(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}")
                await asyncio.get_running_loop().run_in_executor(None, stop.wait, 60)

        thread = threading.Thread(target=uvloop.run, args=(serve(),), daemon=True)
        thread.start()
        try:
            yield await asyncio.get_running_loop().run_in_executor(None, started.get, True, 15), None
        finally:
            stop.set()
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 15)
        return
    server_ssl = client_ssl = None
    scheme = "ws"
    if transport == "tls":
        cert, key = make_certificate(tmp_path)
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ssl.load_cert_chain(cert, key)
        client_ssl = ssl.create_default_context(cafile=str(cert))
        scheme = "wss"
    async with app, app.serve("127.0.0.1", 0, ssl=server_ssl) as server:
        yield f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}", client_ssl


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def _unlimited() -> dict[str, object]:
    """Options turning off every per-connection limit that could refuse a burst of commands."""
    return {"rate_limit": None}
