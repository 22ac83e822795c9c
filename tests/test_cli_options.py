"""The serving options of ``websuckets run`` reach the server: origin, connection cap, keepalive, compression.

Each test runs the ``run`` command in this process (click's runner) on tests/apps/cli_app.py, with
`WebSuckets.__call__` (what ``run`` serves with) replaced by a real server on a free port of
127.0.0.1 that a probe talks to, then stops.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from click.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server
from websockets.exceptions import InvalidStatus

from websuckets import WebSuckets
from websuckets.cli import main

APPS = Path(__file__).parent / "apps"

Probe = Callable[[str, Server], Awaitable[None]]


@pytest.fixture(autouse=True)
def fresh_cli_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """tests/apps importable, and cli_app imported afresh by each test (``run`` sets options on its app)."""
    monkeypatch.chdir(APPS)
    monkeypatch.syspath_prepend(str(APPS))
    sys.modules.pop("cli_app", None)
    yield
    sys.modules.pop("cli_app", None)


def run(*options: str, probe: Probe) -> WebSuckets:
    """``websuckets run cli_app:app OPTIONS`` serving until ``probe(url, server)`` returns; the app it served."""
    served: list[WebSuckets] = []

    async def serve_and_probe(app: WebSuckets, host: str, port: int, *, ssl: Any = None) -> None:
        served.append(app)
        async with app, app.serve("127.0.0.1", 0) as server:
            await asyncio.wait_for(probe(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", server), 20)

    with mock.patch.object(WebSuckets, "__call__", serve_and_probe):
        result = CliRunner().invoke(main, ["run", "cli_app:app", *options], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(served) == 1
    return served[0]


async def refused(url: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as refusal:
        await connect(url, **kwargs)
    return refusal.value.response.status_code


def test_origin() -> None:
    """``--origin`` (repeatable) lets exactly those browser origins in; others get 403."""

    async def probe(url: str, server: Server) -> None:
        assert await refused(url, origin="https://evil.example") == 403
        for origin in ("https://app.example", "https://admin.example"):
            async with connect(url, origin=origin):  # type: ignore[arg-type]
                pass

    run("--origin", "https://app.example", "--origin", "https://admin.example", probe=probe)


def test_origin_star() -> None:
    """``--origin '*'`` lets any origin in."""

    async def probe(url: str, server: Server) -> None:
        async with connect(url, origin="https://evil.example"):  # type: ignore[arg-type]
            pass

    run("--origin", "*", probe=probe)


def test_max_connections() -> None:
    """``--max-connections 1``: a second connection gets 503 while the first is open."""

    async def probe(url: str, server: Server) -> None:
        async with connect(url) as first:
            await first.recv()  # the welcome of its connect hook: it is being served
            assert await refused(url) == 503

    run("--max-connections", "1", probe=probe)


def test_ping_interval() -> None:
    """``--ping-interval`` is the interval of the server's connections."""

    async def probe(url: str, server: Server) -> None:
        async with connect(url) as ws:
            await ws.recv()
            (connection,) = server.connections
            assert connection.ping_interval == 0.25

    run("--ping-interval", "0.25", probe=probe)


def test_ping_timeout_drops_a_silent_peer() -> None:
    """``--ping-timeout``: a peer that answers no ping is dropped once its pong is that late."""

    async def probe(url: str, server: Server) -> None:
        reader, writer = await silent_peer(url)
        (connection,) = server.connections
        assert connection.ping_timeout == 0.2
        async with asyncio.timeout(10):  # the app's own keepalive would wait 35 s
            while await reader.read(4096):  # the welcome, then pings: never answered
                pass
        writer.close()

    run("--ping-interval", "0.1", "--ping-timeout", "0.2", probe=probe)


@pytest.mark.parametrize(
    ("flag", "app_setting", "negotiated"), [("--compression", None, True), ("--no-compression", "deflate", False)]
)
def test_compression(flag: str, app_setting: str | None, negotiated: bool) -> None:
    """``--compression`` turns permessage-deflate on for an app without it; ``--no-compression`` off for one with it."""
    import cli_app

    cli_app.app.compression = app_setting

    async def probe(url: str, server: Server) -> None:
        async with connect(url, compression="deflate") as ws:  # the client offers it
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert ("permessage-deflate" in extensions) is negotiated

    run(flag, probe=probe)


def test_options_left_out_keep_the_apps_settings() -> None:
    """Without the options, the app's own settings serve."""

    async def probe(url: str, server: Server) -> None:
        async with connect(url) as ws:
            await ws.recv()
            (connection,) = server.connections
            assert (connection.ping_interval, connection.ping_timeout) == (20.0, 15.0)

    app = run(probe=probe)
    assert (app.origins, app.max_connections, app.compression) == (None, 10_000, None)


async def silent_peer(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that completes the opening handshake by hand, then never answers anything."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status
    return reader, writer
