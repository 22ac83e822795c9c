"""The Redis ACL of the Scaling out guide is exactly what RedisBackend needs: an app started with a user
that has only it does every kind of work, without one permission error."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import redis
from redis_server import RedisServer
from test_backends import ask, chat_app, log_in
from test_history import resume
from test_scale_out import eventually

from websuckets import History
from websuckets.backends.redis import RedisBackend
from websuckets.exc import BackendUnavailable
from websuckets.testing import Received, TestClient, TestConnection

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide" / "redis.md"


def documented_acl() -> list[str]:
    """The rules of the guide's ``ACL SETUSER websuckets ...`` line, after the user's name."""
    line = re.search(r"^ACL SETUSER websuckets (.*)$", GUIDE.read_text(), re.MULTILINE)
    assert line is not None, "the guide shows the ACL"
    return line.group(1).split()


async def join_lobby(connection: TestConnection) -> Received:
    """Join the history room ``lobby``: the app's reply and the room's position, in either order."""
    await connection.send("join", {"room": "lobby"})
    events = {event.event: event for event in [await connection.receive(), await connection.receive()]}
    assert set(events) == {"joined", "websuckets position"}, events
    return events["websuckets position"]


async def work(url: str) -> list[RedisBackend]:
    """Every kind of work of two processes: clients, tokens (issued, checked, revoked), attributes,
    rooms with and without history, broadcasts, sends to users and to clients of the other process,
    resumes, leaving; the heartbeats and the listeners meanwhile."""
    backends = [RedisBackend(url, heartbeat=0.1, dead_after=5.0, timeout=2.0) for _ in range(2)]
    history = {"lobby": History(size=5)}
    async with (
        TestClient(chat_app(backends[0], history=history), real=True) as first,
        TestClient(chat_app(backends[1], history=history), real=True) as second,
    ):
        alice, bob = await first.connect(), await second.connect()
        token = await log_in(alice, "alice")
        await log_in(bob, "bob")
        await eventually(lambda: first.app.backend.get_online(bob.client_id) is not None)
        elsewhere = await second.connect()
        assert (await ask(elsewhere, "secret", token=token)).payload == "alice"
        await ask(alice, "join", {"room": "plain"})
        await ask(bob, "join", {"room": "plain"})
        start = (await join_lobby(alice)).payload  # lobby keeps history
        await join_lobby(bob)
        assert (await ask(alice, "say", {"room": "lobby", "text": "hello"})).event == "sent"
        assert (await bob.receive()).payload == "hello"
        assert (await ask(alice, "say", {"room": "plain", "text": "hi"})).event == "sent"
        assert (await bob.receive()).payload == "hi"
        assert (await ask(alice, "dm", {"to": "bob", "text": "psst"})).event == "sent"
        assert (await bob.receive()).payload == "psst"
        await bob.close()
        later = await second.connect()
        assert (await resume(later, {"lobby": (start["epoch"], 0)})).event != "error"
        await later.send("join", {"room": "lobby"})
        names = [(await later.receive()).event for _ in range(3)]  # the replay, the reply, the position
        assert sorted(names) == ["joined", "said", "websuckets position"], names
        assert (await ask(alice, "leave", {"room": "plain"})).event == "left"
        assert (await ask(alice, "logout")).event == "bye"
        deadline = asyncio.get_running_loop().time() + 5
        while backends[1].get_verified("alice") is not None:  # the revocation is on its way there
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        assert (await ask(elsewhere, "secret", token=token)).error_name == "unauthorized"
        await asyncio.sleep(0.3)  # a few heartbeats
    return backends


async def test_the_guides_acl_is_enough(redis_server: RedisServer) -> None:
    admin = redis.asyncio.Redis(port=redis_server.port)
    rules = documented_acl()
    assert rules[:2] == ["on", ">a-long-password"]
    await admin.execute_command("ACL", "SETUSER", "websuckets", *rules)
    backends = await work(f"redis://websuckets:a-long-password@127.0.0.1:{redis_server.port}/0")
    refused = await admin.execute_command("ACL", "LOG")
    await admin.aclose()
    assert refused == [], "no permission was missing"
    assert [b.health.failed_operations for b in backends] == [0, 0]


@pytest.mark.parametrize("missing", ["info", "unsubscribe"])
async def test_a_missing_permission_at_start_is_named_in_one_line(redis_server: RedisServer, missing: str) -> None:
    """A user without a command the start needs (or a leave, later): the app does not start, and says which."""
    admin = redis.asyncio.Redis(port=redis_server.port)
    rules = [rule for rule in documented_acl() if rule != f"+{missing}"]
    await admin.execute_command("ACL", "SETUSER", "websuckets", *rules)
    await admin.aclose()
    url = f"redis://websuckets:a-long-password@127.0.0.1:{redis_server.port}/0"
    app = chat_app(RedisBackend(url, timeout=1.0))
    with pytest.raises(BackendUnavailable) as refused:
        async with app:
            pass
    message = str(refused.value)
    assert "\n" not in message
    assert f"cannot reach Redis at redis://websuckets:***@127.0.0.1:{redis_server.port}/0: " in message
    assert "NoPermissionError" in message
    assert f"'{missing}'" in message
    assert "a-long-password" not in message
