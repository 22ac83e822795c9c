"""Handshake checks: the origin of browsers, the connection cap, and the CLI's options for them."""

import asyncio
import json

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request

from websuckets import WebSuckets
from websuckets.origin import origin_allowed
from websuckets.testing import TestClient


@pytest.mark.parametrize(
    ("origin", "host", "origins", "allowed"),
    [
        (None, "example.com", None, True),
        ("https://example.com", "example.com", None, True),
        ("https://example.com:443", "example.com", None, True),
        ("http://example.com", "example.com:80", None, True),
        ("http://LOCALHOST:9000", "localhost:9000", None, True),
        ("http://[::1]:9000", "[::1]:9000", None, True),
        ("https://evil.example", "example.com", None, False),
        ("http://example.com:8080", "example.com", None, False),
        ("null", "example.com", None, False),
        ("https://example.com", None, None, False),
        ("https://evil.example", "example.com", "*", True),
        ("https://app.example", "api.example", ["https://App.example"], True),
        ("https://evil.example", "api.example", ["https://app.example"], False),
        (None, "api.example", ["https://app.example"], True),
    ],
)
def test_origin_rules(origin: str | None, host: str | None, origins: object, allowed: bool) -> None:
    """Same origin by default, an explicit list, or any; clients without Origin always pass."""
    assert origin_allowed(origin, host, origins) is allowed  # type: ignore[arg-type]


async def test_a_cross_site_browser_is_refused_with_403() -> None:
    """A page of another site cannot open a websocket to the app: 403 at the handshake."""
    async with TestClient(WebSuckets(), real=True) as client:
        with pytest.raises(InvalidStatus) as refused:
            await connect(client.url, origin="https://evil.example")  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        async with connect(client.url, origin=f"http://127.0.0.1:{client.port}") as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps({"event": "nope"}))
            assert json.loads(await ws.recv())["payload"]["name"] == "unknown_command"
        async with connect(client.url) as ws:  # no Origin: not a browser
            await ws.send(json.dumps({"event": "nope"}))
            assert json.loads(await ws.recv())["payload"]["name"] == "unknown_command"


async def test_listed_origins_and_star() -> None:
    """origins=[...] lets exactly those in; origins='*' lets any in."""
    async with TestClient(WebSuckets(origins=["https://app.example"]), real=True) as client:
        async with connect(client.url, origin="https://app.example"):  # type: ignore[arg-type]
            pass
        with pytest.raises(InvalidStatus):
            await connect(client.url, origin=f"http://127.0.0.1:{client.port}")  # type: ignore[arg-type]
    async with TestClient(WebSuckets(origins="*"), real=True) as client:
        ws = await connect(client.url, origin="https://evil.example")  # type: ignore[arg-type]
        await ws.close()


async def test_connections_over_the_cap_get_503_with_retry_after() -> None:
    """max_connections open: the next handshake is refused with 503 and Retry-After; a slot frees on close."""
    async with TestClient(WebSuckets(max_connections=2), real=True) as client:
        first = await client.connect()
        await client.connect()
        with pytest.raises(InvalidStatus) as refused:
            await connect(client.url)
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"].isdigit()
        await first.close()
        await client.connect()


async def test_the_cap_holds_when_other_checks_make_handshakes_wait() -> None:
    """Handshakes that passed the cap while a slower check awaited are counted again: never more than the cap."""

    async def slow_check(connection: ServerConnection, request: Request) -> None:
        await asyncio.sleep(0.05)  # a token looked up in a shared backend, say

    async with TestClient(WebSuckets(max_connections=3, handshake_checks=[slow_check]), real=True) as client:

        async def attempt() -> ClientConnection | int:
            try:
                return await connect(client.url)
            except InvalidStatus as refused:
                return refused.response.status_code

        results = await asyncio.gather(*(attempt() for _ in range(10)))
        opened = [result for result in results if isinstance(result, ClientConnection)]
        assert (len(opened), results.count(503)) == (3, 7)
        for ws in opened:
            await ws.close()
