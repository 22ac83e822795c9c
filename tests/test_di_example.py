"""The dependency-injection example of the docs: per-connection state, per-command finalizers, fakes."""

import logging

import pytest
from dishka import Provider, Scope, provide
from examples_loader import load_example

from websuckets.testing import TestClient


async def test_each_client_has_its_own_basket(real: bool) -> None:
    """The SESSION-scoped basket keeps state per connection."""
    example = load_example("di_scopes.py")
    async with TestClient(example.create_app(), real=real) as client:
        alice, bob = await client.connect(), await client.connect()
        assert (await alice.request("basket add", {"name": "apple"})).payload["items"] == ["apple"]
        assert (await alice.request("basket add", {"name": "pear"})).payload["items"] == ["apple", "pear"]
        assert (await bob.request("basket add", {"name": "plum"})).payload["items"] == ["plum"]


async def test_audit_is_flushed_after_every_command(caplog: pytest.LogCaptureFixture) -> None:
    """The REQUEST-scoped audit's finalizer runs once per command; the basket's on disconnect."""
    caplog.set_level(logging.INFO, logger="di_scopes")
    example = load_example("di_scopes.py")
    async with TestClient(example.create_app()) as client:
        alice = await client.connect()
        await alice.request("basket add", {"name": "apple"})
        await alice.request("basket add", {"name": "pear"})
        await alice.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "di_scopes"]
    assert len(messages) == 3
    assert messages[0].startswith("audit of 'basket add': ['added apple at ")
    assert messages[1].startswith("audit of 'basket add': ['added pear at ")
    assert messages[2] == "client left with 2 items in the basket"


async def test_a_fake_provider_replaces_the_real_service() -> None:
    """Passing a fake provider swaps the clock: what tests of a real project do."""
    example = load_example("di_scopes.py")

    class FrozenClock(example.Clock):  # type: ignore[name-defined,misc]
        def now(self) -> str:
            return "2000-01-01T00:00:00+00:00"

    class FakeClockProvider(Provider):
        clock = provide(FrozenClock, provides=example.Clock, scope=Scope.APP)

    async with TestClient(example.create_app(FakeClockProvider())) as client:
        alice = await client.connect()
        reply = await alice.request("basket add", {"name": "apple"})
        assert reply.payload["at"] == "2000-01-01T00:00:00+00:00"
