"""The refresh recipe of the Security guide (examples/token_refresh.py): refresh before expiry, or log in again.

The tests that take ``make_backend`` (a refresh revokes the old token, an expired one opens nothing) are part
of the backend contract: the example runs on every backend of tests/conftest.py's list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import ModuleType

import pytest
from examples_loader import load_example

from websuckets.backends import Backend
from websuckets.exc import Unauthorized
from websuckets.testing import ErrorReply, TestClient

TTL = 0.4


@pytest.fixture
def example() -> ModuleType:
    """The example, with tokens lasting TTL seconds instead of 15 minutes."""
    module = load_example("token_refresh.py")
    module.app.token_ttl = TTL
    return module


async def test_refreshing_before_expiry_keeps_the_client_signed_in(
    example: ModuleType, real: bool, make_backend: Callable[[], Backend]
) -> None:
    """Each refresh gives a new token for the same user and revokes the old one; the new one outlives it."""
    example.app.backend = make_backend()
    async with TestClient(example.app, real=real) as client:
        alice = await client.connect()
        clock = asyncio.get_running_loop().time
        logged_in = issued_at = clock()  # before the token is issued: it expires TTL after this at the earliest
        issued = (await alice.request("auth login", {"login": "alice", "password": "wonderland"})).payload
        assert issued["expires_in"] == TTL
        old = issued["token"]
        for _ in range(3):  # three refreshes, each half a lifetime after the token it replaces was issued
            # timed from the issue, not from the check of the old token: on Redis a token it does not know
            # is refused after a quarter of a second (docs/guide/scaling.md), over half a lifetime here
            await asyncio.sleep(issued_at + TTL / 2 - clock())
            issued_at = clock()
            new = (await alice.request("auth refresh")).payload["token"]
            assert new != old
            assert (await alice.request("notes count", token=new)).payload == {"user": "alice", "count": 0}
            with pytest.raises(ErrorReply) as refused:
                await alice.request("notes count", token=old)
            assert refused.value.received.payload["details"] == Unauthorized.INVALID  # revoked, not expired
            old = new
        assert clock() - logged_in > TTL, "signed in past the first token's expiry"

        returning = await client.connect(headers={"Authorization": f"Bearer {old}"})
        assert (await returning.request("notes count")).payload["user"] == "alice"


async def test_a_token_left_to_expire_cannot_be_refreshed(
    example: ModuleType, real: bool, make_backend: Callable[[], Backend]
) -> None:
    """Past its expiry the token opens nothing, refresh included; the client is told it expired, and logs in."""
    example.app.backend = make_backend()
    async with TestClient(example.app, real=real) as client:
        alice = await client.connect()
        await alice.request("auth login", {"login": "alice", "password": "wonderland"})
        await asyncio.sleep(TTL + 0.1)
        for command in ("auth refresh", "notes count"):
            with pytest.raises(ErrorReply) as refused:
                await alice.request(command)
            assert refused.value.received.payload == {
                "name": "unauthorized",
                "details": "the token has expired",
                "event": command,
                "id": refused.value.received.payload["id"],
            }
        await alice.request("auth login", {"login": "alice", "password": "wonderland"})
        assert (await alice.request("notes count")).payload["user"] == "alice"


async def test_wrong_passwords_get_no_token(example: ModuleType) -> None:
    """A login with the wrong password is an error the client can show."""
    async with TestClient(example.app) as client:
        alice = await client.connect()
        with pytest.raises(ErrorReply) as refused:
            await alice.request("auth login", {"login": "alice", "password": "nope"})
        assert refused.value.received.payload["name"] == "bad_credentials"
