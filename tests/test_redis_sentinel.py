"""RedisBackend through Redis Sentinel: two processes on a ``redis+sentinel://`` URL are one app, and follow a
failover to the new master by themselves.

The servers are real and the tests' own (`RedisSentinels`: a master, a replica, three sentinels with
quorum 2 on 127.0.0.1); two apps in this test process stand for two server processes, as in
``test_scale_out.py``. The failover tests measure the outage window and print it (``pytest -s`` shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis_server import RedisSentinels, make_certificates
from test_cli import websuckets
from test_history import history_app, joined, resume, say, texts_until_position
from test_scale_out import ask, backend, chat_app, eventually, log_in

from websuckets import History, WebSuckets
from websuckets.backends.redis import RedisBackend
from websuckets.backends.redis.address import FORMS, parse
from websuckets.exc import BackendUnavailable
from websuckets.testing import TestClient, TestConnection

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def sentinels() -> Iterator[RedisSentinels]:
    """A master, a replica and three sentinels of this test's own; killed afterwards."""
    servers = RedisSentinels()
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
async def two(sentinels: RedisSentinels) -> AsyncIterator[tuple[TestClient, TestClient]]:
    """Two chat apps, each its own server, on the sentinels' URL."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(TestClient(chat_app(backend(sentinels.url())), real=True))
        second = await stack.enter_async_context(TestClient(chat_app(backend(sentinels.url())), real=True))
        yield first, second


def master_of(client: TestClient) -> tuple[str, int] | None:
    """The address of the master the app's command connection was made to."""
    link = client.app.backend._link  # type: ignore[attr-defined]
    return link._connector.connected_to(link.client)  # type: ignore[no-any-return]


def on(port: int, *clients: TestClient) -> Callable[[], bool]:
    def check() -> bool:
        where = ("127.0.0.1", port)
        return all(client.app.backend.health.connected and master_of(client) == where for client in clients)

    check.__doc__ = f"every app connected to the master on port {port}"
    return check


async def test_two_apps_on_the_sentinels_are_one(two: tuple[TestClient, TestClient], sentinels: RedisSentinels) -> None:
    """On a redis+sentinel:// URL a broadcast from one app reaches a client of the other, and a token issued
    on one opens protected commands on the other; both talk to the master the sentinels name."""
    first, second = two
    assert on(sentinels.master.port, first, second)()
    alice, bob = await first.connect(), await second.connect()
    await ask(bob, "join", {"room": "lobby"})
    await eventually(lambda: bob.client_id in first.app.backend.room_members("lobby"))
    await ask(alice, "say", {"room": "lobby", "text": "through the sentinels"})
    assert (await bob.receive()).payload == "through the sentinels"
    token = await log_in(alice, "alice")
    assert (await ask(bob, "secret", token=token)).payload == "alice"


@dataclass
class Probes:
    """Broadcasts from ``alice`` to ``bob`` every 50 ms, timed: what was sent, what failed, what arrived."""

    alice: TestConnection
    bob: TestConnection
    start: float = field(default_factory=time.monotonic)
    sent: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    heard: set[str] = field(default_factory=set)

    async def hear(self) -> None:
        while True:
            self.heard.add((await self.bob.receive(timeout=60)).payload)

    async def until(self, done: Callable[[], bool], within: float) -> None:
        """Probe until ``done()`` and the last 5 probes all arrived; fail after ``within`` seconds."""
        number = 0
        while True:
            number += 1
            text = str(number)
            self.sent[text] = time.monotonic() - self.start
            reply = await ask(self.alice, "say", {"room": "lobby", "text": text})
            if reply.event == "error":
                assert reply.payload["name"] == "backend_unavailable", reply
                self.failed.append(text)
            await asyncio.sleep(0.05)
            last = [str(n) for n in range(max(1, number - 4), number + 1)]
            if number >= 5 and done() and all(text in self.heard for text in last):
                return
            assert time.monotonic() - self.start < within, f"not back within {within} s: {self.report()}"

    def window(self) -> float:
        """Seconds from the start to the first probe that arrived after the last one that did not."""
        lost = [text for text in self.sent if text not in self.heard]
        if not lost:
            return 0.0
        last_lost = max(lost, key=int)
        arrived = [text for text in self.sent if int(text) > int(last_lost) and text in self.heard]
        return self.sent[min(arrived, key=int)]

    def report(self) -> str:
        lost = [text for text in self.sent if text not in self.heard]
        first = f", the first sent at {self.sent[lost[0]]:.2f} s" if lost else ""
        return (
            f"outage window {self.window():.2f} s: {len(self.sent)} broadcasts, each 50 ms after the last answer; "
            f"{len(lost)} did not arrive{first} ({len(self.failed)} of them failed with backend_unavailable)"
        )


async def follow(
    two: tuple[TestClient, TestClient], sentinels: RedisSentinels, fail_over: Callable[[int], None], what: str
) -> None:
    """Fail the master over with ``fail_over(port)``; both apps follow the new master by themselves, and
    cross-process broadcasts, sends to users and tokens work again. The outage window is printed."""
    first, second = two
    alice, bob = await first.connect(), await second.connect()
    for member in (alice, bob):
        await ask(member, "join", {"room": "lobby"})
    await eventually(lambda: len(first.app.backend.room_members("lobby")) == 2)
    old = sentinels.master.port
    probes = Probes(alice, bob)
    hearing = asyncio.create_task(probes.hear())
    try:
        fail_over(old)
        named = asyncio.create_task(asyncio.to_thread(sentinels.wait_for_new_master, old))
        await probes.until(lambda: named.done() and on(named.result(), first, second)(), within=20)
    finally:
        hearing.cancel()
        with contextlib.suppress(asyncio.CancelledError, BaseException):
            await hearing
    print(f"\n{what}: {probes.report()}")
    assert probes.window() < 15

    elsewhere = await second.connect()
    token = await log_in(alice, "alice")
    assert (await ask(elsewhere, "secret", token=token)).payload == "alice"
    await ask(elsewhere, "dm", {"to": "alice", "text": "psst"})
    assert (await alice.receive()).payload == "psst"


async def test_a_sentinel_failover_is_followed(
    two: tuple[TestClient, TestClient], sentinels: RedisSentinels, caplog: pytest.LogCaptureFixture
) -> None:
    """SENTINEL FAILOVER: both apps notice within a heartbeat that the sentinels name another master (the
    old one still takes writes for 10 s or more), log the loss and the return, and work again."""
    caplog.set_level("INFO", logger="websuckets")
    service = sentinels.service
    await follow(two, sentinels, lambda _: sentinels.sentinel().sentinel_failover(service), "SENTINEL FAILOVER")
    lost = [record for record in caplog.records if record.message.startswith("lost Redis at redis+sentinel://")]
    assert lost
    assert all(record.levelname == "ERROR" for record in lost)
    assert "the sentinels name 127.0.0.1:" in lost[0].message
    back = [record for record in caplog.records if record.message.startswith("reconnected to Redis")]
    assert back
    assert back[-1].levelname == "INFO"
    assert f"(the master of 'websuckets', 127.0.0.1:{sentinels.replica.port})" in back[-1].message


async def test_a_killed_master_is_followed(two: tuple[TestClient, TestClient], sentinels: RedisSentinels) -> None:
    """kill -9 of the master: the sentinels promote the replica, and both apps follow by themselves."""
    await follow(two, sentinels, lambda port: sentinels.server(port).kill(), "master killed (SIGKILL)")


async def test_what_the_old_master_took_after_the_promotion(sentinels: RedisSentinels) -> None:
    """A logout and a login written to the old master after the promotion (this process had not noticed yet)
    never reach the new one: the rebuild on the new master sends the revocation again, so the token is
    refused everywhere, and finds the new token gone, so its client is no longer verified (it logs in again)."""
    old, url = sentinels.master.port, sentinels.url()
    slow = RedisBackend(url, heartbeat=8.0, dead_after=30.0, timeout=1.0)  # slow to notice the failover
    quick = RedisBackend(url, heartbeat=0.2, dead_after=30.0, timeout=1.0)  # and not taken for dead by the other
    async with TestClient(chat_app(slow), real=True) as first, TestClient(chat_app(quick), real=True) as second:
        alice, carol = await first.connect(), await first.connect()
        token = await log_in(alice, "alice")
        assert (await ask(await second.connect(), "secret", token=token)).payload == "alice"
        new = await asyncio.to_thread(sentinels.failover)
        await eventually(on(new, second), within=10)
        assert master_of(first) == ("127.0.0.1", old)
        assert (await ask(alice, "logout")).event == "bye"  # both written to the old master
        carols = await log_in(carol, "carol")
        await eventually(on(new, first), within=20)  # its next heartbeat, or the old master's demotion
        later = await second.connect()
        await later.send("secret", token=token)
        await later.receive_error("unauthorized")
        await eventually(lambda: first.app.backend.get_verified("carol") is None)
        await carol.send("secret", token=carols)
        await carol.receive_error("unauthorized")


async def test_sentinels_away_are_said_once_and_the_master_serves_on(
    two: tuple[TestClient, TestClient], sentinels: RedisSentinels, caplog: pytest.LogCaptureFixture
) -> None:
    """Every sentinel gone while the master is fine: one WARNING per process, and cross-process work goes on."""
    first, second = two
    alice, bob = await first.connect(), await second.connect()
    await ask(bob, "join", {"room": "lobby"})
    await eventually(lambda: bob.client_id in first.app.backend.room_members("lobby"))
    sentinels.kill_sentinels()
    await eventually(lambda: caplog.text.count("no sentinel names the master") == 2)
    await asyncio.sleep(0.5)  # a few heartbeats more: still said once each
    assert caplog.text.count("no sentinel names the master") == 2
    assert first.app.backend.health.connected
    await ask(alice, "say", {"room": "lobby", "text": "without the sentinels"})
    assert (await bob.receive()).payload == "without the sentinels"


async def test_history_rooms_after_a_failover(sentinels: RedisSentinels) -> None:
    """A failover starts a new epoch in every history room (the new master's run id is another): members are
    told of the gap, resuming from before it replays nothing and says recovered: false, and the room goes on
    in its new epoch."""
    rooms = {"lobby": History(size=10)}
    async with TestClient(history_app(backend(sentinels.url()), rooms), real=True, timeout=5) as client:
        alice, bob = await client.connect(), await client.connect()
        epoch = (await joined(alice)).payload["epoch"]
        await joined(bob)
        await say(bob, "before")
        await alice.receive()
        await alice.close()
        new = await asyncio.to_thread(sentinels.failover)
        await eventually(on(new, client), within=10)
        gap = await bob.receive(timeout=10)
        assert (gap.event, gap.payload) == ("websuckets gap", {"room": "lobby"})
        again = await client.connect()
        await resume(again, {"lobby": (epoch, 1)})
        await again.send("join", {"room": "lobby"})
        texts, position = await texts_until_position(again)
        assert (texts, position["recovered"]) == ([], False)
        assert position["epoch"] != epoch
        await say(bob, "after")
        assert (await again.receive()).payload == "after"


BAD_URLS = [
    ("redis+sentinel://:hunter2@127.0.0.1:26379", "no service name"),
    ("redis+sentinel://:hunter2@127.0.0.1:26379/", "no service name"),
    ("redis+sentinel://:hunter2@127.0.0.1:port/websuckets", "is not a port number"),
    ("redis+sentinel://:hunter2@127.0.0.1:70000/websuckets", "is not a port number"),
    ("redis+sentinel://:hunter2@127.0.0.1:26379/websuckets/zero", "is not a number"),
    ("redis+foo://:hunter2@127.0.0.1:6379/0", "unknown scheme 'redis+foo'"),
    ("redis://:hunter2@127.0.0.1:port/0", "Port could not be cast to integer value as 'port'"),
    ("127.0.0.1:6379", "no scheme"),
]


@pytest.mark.parametrize(("url", "why"), BAD_URLS)
async def test_an_unusable_url_is_refused_at_start(url: str, why: str) -> None:
    """A URL the backend cannot use stops the app at start-up, in one line: the URL without its password, why,
    and the forms accepted."""
    app = WebSuckets(backend=RedisBackend(url, timeout=0.5))
    with pytest.raises(BackendUnavailable) as caught:
        async with app:
            pass
    message = str(caught.value.details)
    assert "\n" not in message
    assert "hunter2" not in message
    assert message.startswith(f"cannot use the Redis URL {url.replace('hunter2', '***')}: ")
    assert why in message
    assert message.endswith(f"; expected {FORMS}")


def test_the_sentinel_forms_are_read_like_redis_urls() -> None:
    """Every sentinel (default port 26379, IPv6 in brackets), the service, the db, and query parameters as
    redis:// reads them; rediss+sentinel:// is TLS to the sentinels and the data nodes alike."""
    address = parse("redis+sentinel://app:pw@[::1]:26380,sentinel.internal/svc/3?socket_timeout=0.5")
    assert address.sentinels == (("::1", 26380), ("sentinel.internal", 26379))
    assert address.service == "svc"
    assert address.options == {"username": "app", "password": "pw", "db": 3, "socket_timeout": 0.5}
    assert address.sentinel_options == {}
    tls = parse("rediss+sentinel://h:1/svc?ssl_ca_certs=/ca.pem&sentinel_password=s&sentinel_username=u")
    assert tls.options == {"db": 0, "ssl": True, "ssl_ca_certs": "/ca.pem"}
    assert tls.sentinel_options == {"username": "u", "password": "s", "ssl": True, "ssl_ca_certs": "/ca.pem"}
    assert parse("redis://localhost:6379/0").sentinels == ()


def test_websuckets_run_refuses_an_unusable_url_in_one_line(tmp_path: Path) -> None:
    """``websuckets run`` with an unusable URL prints the "Scaling out" guide's line, and exits with status 1."""
    guide = (Path(__file__).parent.parent / "docs" / "guide" / "scaling.md").read_text()
    shown = re.search(r"\$ websuckets run chat\.app:app\n(Error: cannot use the Redis URL (\S+): .*)\n```", guide)
    assert shown is not None
    url = shown.group(2).replace("***", "hunter2")
    (tmp_path / "bad.py").write_text(
        "from websuckets import WebSuckets\n"
        "from websuckets.backends.redis import RedisBackend\n\n"
        f"app = WebSuckets(backend=RedisBackend({url!r}))\n"
    )
    process = websuckets("run", "bad:app", cwd=tmp_path)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert stderr == shown.group(1) + "\n"
    assert FORMS in stderr


async def test_sentinels_that_are_all_away_are_named_at_start() -> None:
    """No sentinel answers: the app does not start, and the error names the URL without its password."""
    url = "redis+sentinel://:hunter2@127.0.0.1:1,127.0.0.1:2/websuckets"
    with pytest.raises(BackendUnavailable, match=r"cannot reach Redis at redis\+sentinel://:\*\*\*@127") as caught:
        async with WebSuckets(backend=RedisBackend(url, timeout=0.5)):
            pass
    assert "MasterNotFoundError: no sentinel names a master of 'websuckets' (127.0.0.1:1: ConnectionError" in str(
        caught.value
    )
    assert "<redis" not in str(caught.value)
    assert "hunter2" not in str(caught.value)


async def test_an_unknown_service_is_named_at_start(sentinels: RedisSentinels) -> None:
    """Sentinels that watch no such service: the app does not start, and each sentinel's answer is named."""
    url = sentinels.url().replace("/websuckets/", "/nosuch/")
    with pytest.raises(BackendUnavailable, match="no sentinel names a master of 'nosuch'") as caught:
        async with WebSuckets(backend=RedisBackend(url, timeout=0.5)):
            pass
    assert str(caught.value).count("knows no such service") == 3


async def test_rediss_sentinel_is_tls_to_the_sentinels_and_the_data_nodes(tmp_path: Path) -> None:
    """rediss+sentinel://...?ssl_ca_certs=CA: servers and sentinels that speak only TLS; two apps are one, and
    follow a failover."""
    servers = RedisSentinels(tls=make_certificates(tmp_path))
    servers.start()
    try:
        async with AsyncExitStack() as stack:
            first = await stack.enter_async_context(TestClient(chat_app(backend(servers.url())), real=True))
            second = await stack.enter_async_context(TestClient(chat_app(backend(servers.url())), real=True))
            service = servers.service
            await follow((first, second), servers, lambda _: servers.sentinel().sentinel_failover(service), "TLS")
    finally:
        servers.stop()


async def test_the_url_s_password_is_the_data_nodes_and_the_sentinels_have_their_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The URL's password is the data nodes'; ``?sentinel_password=`` is the sentinels' own (hidden in logs)."""
    caplog.set_level("DEBUG", logger="websuckets")
    servers = RedisSentinels(data_password="d4ta", sentinel_password="s3cret")
    servers.start()
    try:
        url = servers.url().replace("://", "://:d4ta@") + "?sentinel_password=s3cret"
        async with TestClient(chat_app(RedisBackend(url, timeout=1.0)), real=True) as client:
            alice, bob = await client.connect(), await client.connect()
            await ask(bob, "join", {"room": "lobby"})
            await ask(alice, "say", {"room": "lobby", "text": "authenticated"})
            assert (await bob.receive()).payload == "authenticated"
        for wrong in (url.partition("?")[0], url.replace(":d4ta@", ":nope@")):
            with pytest.raises(BackendUnavailable, match="cannot reach Redis at") as caught:
                async with WebSuckets(backend=RedisBackend(wrong, timeout=1.0)):
                    pass
            assert "d4ta" not in str(caught.value)
            assert "s3cret" not in str(caught.value)
        assert "connected to Redis at redis+sentinel://:***@" in caplog.text
        assert "sentinel_password=***" in caplog.text
        assert "d4ta" not in caplog.text
        assert "s3cret" not in caplog.text
    finally:
        servers.stop()
