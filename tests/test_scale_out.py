"""Several processes on one Redis: what a program written for one process does, unchanged, on many.

Two apps in this test process stand for two server processes (each has its own RedisBackend,
worker id, mirror and listener, and its own real server on 127.0.0.1); one test kills a real
separate process with SIGKILL. The Redis server is real, and is killed and restarted mid-test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import re
import signal
import sys
import textwrap
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from examples_loader import load_example
from redis_server import RedisServer, free_port
from test_backends import ask, chat_app, log_in
from test_history import history_app

from websuckets import WebSuckets
from websuckets.backends.redis import RedisBackend
from websuckets.backends.redis.faults import reason as reason_of
from websuckets.exc import BackendUnavailable
from websuckets.remote import RemoteUser
from websuckets.testing import TestClient, TestConnection

pytestmark = pytest.mark.timeout(60)


def backend(url: str) -> RedisBackend:
    return RedisBackend(url, heartbeat=0.2, dead_after=1.0, timeout=1.0)


async def eventually(check: Callable[[], Any], within: float = 5.0) -> None:
    """Poll ``check`` until it is true; fail with its last value after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {within} s: {check.__doc__ or check}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def two(redis_url: str) -> AsyncIterator[tuple[TestClient, TestClient]]:
    """Two chat apps, each its own server, sharing one Redis."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(TestClient(chat_app(backend(redis_url)), real=True))
        second = await stack.enter_async_context(TestClient(chat_app(backend(redis_url)), real=True))
        yield first, second


def sees(client: TestClient, connection: TestConnection) -> bool:
    return client.app.backend.get_online(connection.client_id) is not None


async def test_the_documentations_send_message_works_across_processes(redis_url: str) -> None:
    """The original 'send message' example, unchanged but for its backend, delivers to a client of another process."""
    apps = [load_example("docs/send_message.py").app for _ in range(2)]
    for app in apps:
        app.backend = backend(redis_url)
    async with TestClient(apps[0], real=True) as first, TestClient(apps[1], real=True) as second:
        alice, bob = await first.connect(), await second.connect()
        await eventually(lambda: sees(first, bob))
        await alice.send("send message", {"to": str(bob.client_id), "text": "hello"})
        assert (await alice.receive()).event == "message sent"
        received = await bob.receive()
        assert (received.event, received.payload) == (
            "incoming message",
            {"author": str(alice.client_id), "text": "hello"},
        )

        for n in range(200):  # in order, per sender
            await alice.send("send message", {"to": str(bob.client_id), "text": str(n)})
        assert [(await bob.receive()).payload["text"] for _ in range(200)] == [str(n) for n in range(200)]
        assert {(await alice.receive()).event for _ in range(200)} == {"message sent"}

        await bob.close()
        await eventually(lambda: not sees(first, bob))
        await alice.send("send message", {"to": str(bob.client_id), "text": "anyone?"})
        assert (await alice.receive_error()).payload["name"] == "такой клиент не подключен"


async def test_mirror_shows_remote_clients_with_their_attributes(two: tuple[TestClient, TestClient]) -> None:
    """A client of one process appears on the other with its verified id and shared attributes, read-only."""
    first, second = two
    alice = await first.connect()
    await log_in(alice, "alice")
    remote = second.app.backend
    await eventually(lambda: remote.get_verified("alice") is not None)
    user = remote.get_verified("alice")
    assert isinstance(user, RemoteUser)
    assert (user.client_id, user.id, user.verified, user.token) == (alice.client_id, "alice", True, None)
    assert user.login == "alice"  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="connected to another process"):
        user.login = "mallory"  # type: ignore[attr-defined]
    assert remote.count_online() == 1


async def test_tokens_and_revocation_work_everywhere(two: tuple[TestClient, TestClient]) -> None:
    """A token issued on one process opens protected commands on the other, until it is revoked on the first."""
    first, second = two
    alice = await first.connect()
    token = await log_in(alice, "alice")
    elsewhere = await second.connect()
    assert (await ask(elsewhere, "secret", token=token)).payload == "alice"
    await eventually(lambda: second.app.backend.get_verified("alice") is not None)

    await ask(alice, "logout")
    await eventually(lambda: second.app.backend.get_verified("alice") is None)
    await elsewhere.send("secret", token=token)
    await elsewhere.receive_error("unauthorized")


async def test_rooms_and_users_span_processes(two: tuple[TestClient, TestClient]) -> None:
    """Room broadcasts and sends to a user reach members and connections on both processes."""
    first, second = two
    alice, bob, carol = await first.connect(), await second.connect(), await second.connect()
    for member in (alice, bob):
        await ask(member, "join", {"room": "lobby"})
    await eventually(lambda: len(first.app.backend.room_members("lobby")) == 2)
    assert set(second.app.backend.room_members("lobby")) == {alice.client_id, bob.client_id}

    await ask(alice, "say", {"room": "lobby", "text": "hi"})
    assert (await bob.receive()).payload == "hi"
    await ask(carol, "say", {"text": "all"})
    assert (await alice.receive()).payload == "all"
    assert (await bob.receive()).payload == "all"

    await log_in(alice, "alice")
    other_alice = await second.connect()
    await log_in(other_alice, "alice")
    await ask(carol, "dm", {"to": "alice", "text": "psst"})
    assert (await alice.receive()).payload == "psst"
    assert (await other_alice.receive()).payload == "psst"

    await bob.close()
    await eventually(lambda: set(first.app.backend.room_members("lobby")) == {alice.client_id})


async def test_redis_restart_is_loud_then_healed(redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    """Redis killed mid-test: remote work fails with backend_unavailable, local work goes on; after a restart
    (empty) both processes see each other again, tokens still work and deliveries resume."""
    caplog.set_level("INFO", logger="websuckets")
    url = redis_server.url
    async with (
        TestClient(chat_app(backend(url)), real=True) as first,
        TestClient(chat_app(backend(url)), real=True) as second,
    ):
        alice, local_peer, bob = await first.connect(), await first.connect(), await second.connect()
        token = await log_in(alice, "alice")
        for member in (alice, local_peer, bob):
            await ask(member, "join", {"room": "lobby"})
        await eventually(lambda: len(first.app.backend.room_members("lobby")) == 3)

        redis_server.kill()
        error = await ask(alice, "say", {"room": "lobby", "text": "anyone?"})
        assert (error.event, error.payload["name"]) == ("error", "backend_unavailable")
        assert (await local_peer.receive()).payload == "anyone?"  # the local member got it anyway
        await eventually(lambda: not first.app.backend.health.connected)
        assert "lost Redis" in caplog.text
        assert ".;" not in caplog.text  # redis-py's "Connection closed by server." inside our line

        late = await second.connect()  # connects while Redis is away: announced once it is back
        await eventually(lambda: "cannot reconnect to Redis at redis://127.0.0.1" in caplog.text)
        failure = next(r for r in caplog.records if r.getMessage().startswith("cannot reconnect to Redis"))
        assert failure.levelname == "WARNING"
        assert ": ConnectionError: " in failure.getMessage()
        assert failure.getMessage().endswith("(failed attempts: 1)")

        redis_server.start()  # empty: no persistence
        await eventually(lambda: first.app.backend.health.connected and second.app.backend.health.connected, 10)
        await eventually(lambda: sees(first, bob) and sees(second, alice) and sees(first, late))
        await eventually(lambda: len(second.app.backend.room_members("lobby")) == 3)
        assert first.app.backend.health.reconnects >= 1
        assert "reconnected to Redis" in caplog.text

        elsewhere = await second.connect()
        assert (await ask(elsewhere, "secret", token=token)).payload == "alice"  # re-announced by its holder
        await ask(bob, "say", {"room": "lobby", "text": "back"})
        assert (await alice.receive()).payload == "back"
        assert (await local_peer.receive()).payload == "back"


@pytest.mark.parametrize("secret", ["hunter2@", "?password=hunter2"])
async def test_redis_down_at_start_names_the_url(secret: str) -> None:
    """An app whose Redis is unreachable at start-up fails to start, naming the URL (without password)."""
    port = free_port()
    url = f"redis://:hunter2@127.0.0.1:{port}/0" if "@" in secret else f"redis://127.0.0.1:{port}/0{secret}"
    app = WebSuckets(backend=RedisBackend(url, timeout=0.5))
    with pytest.raises(BackendUnavailable, match=rf"cannot reach Redis at redis://.*127\.0\.0\.1:{port}") as caught:
        async with app:
            pass
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            ConnectionError("Error 111 connecting to localhost:6379. Connection refused."),
            "ConnectionError: Error 111 connecting to localhost:6379. Connection refused",
        ),
        (TimeoutError(), "TimeoutError"),
        (OSError("no dot"), "OSError: no dot"),
    ],
)
def test_a_reason_fits_inside_a_log_line(error: Exception, reason: str) -> None:
    """The cause in "lost Redis at URL: CAUSE; reconnecting" and the like: its type, its message without final dot."""
    assert reason_of(error) == reason


async def test_a_unix_socket_url_works(redis_server: RedisServer) -> None:
    """RedisBackend("unix:///path/redis.sock?db=0") serves like a TCP URL."""
    async with TestClient(chat_app(RedisBackend(redis_server.unix_url)), real=True) as client:
        alice, bob = await client.connect(), await client.connect()
        await ask(bob, "join", {"room": "lobby"})
        await ask(alice, "say", {"room": "lobby", "text": "over a unix socket"})
        assert (await bob.receive()).payload == "over a unix socket"


PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from websuckets import WebSuckets
    from websuckets.backends.redis import RedisBackend

    app = WebSuckets(backend=RedisBackend(sys.argv[1], heartbeat=0.2, dead_after=1.0))
    asyncio.run(app("127.0.0.1", int(sys.argv[2])))
    """
)


@contextlib.asynccontextmanager
async def server_process(redis_url: str, tmp_path: Path, dead_after: float = 1.0) -> AsyncIterator[tuple[Process, int]]:
    """A websuckets app in a process of its own on a free port, sharing ``redis_url``; killed afterwards."""
    script = tmp_path / "server.py"
    script.write_text(PROCESS.replace("dead_after=1.0", f"dead_after={dead_after}"))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [str(script), redis_url, str(port)]
    process = await asyncio.create_subprocess_exec(sys.executable, *args, env=env, stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        await process.stdout.readline()  # "websuckets: serving on ..."
        yield process, port
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_killed_process_leaves_no_ghosts(redis_url: str, tmp_path: Path) -> None:
    """kill -9 of a server process: its clients leave the other process's view within dead_after + heartbeat."""
    from websockets.asyncio.client import connect

    async with (
        server_process(redis_url, tmp_path) as (process, port),
        TestClient(chat_app(backend(redis_url)), real=True) as survivor,
    ):
        sockets = [await connect(f"ws://127.0.0.1:{port}") for _ in range(3)]
        await eventually(lambda: survivor.app.backend.count_online() == 3)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        await eventually(lambda: survivor.app.backend.count_online() == 0, within=10)
        for socket in sockets:
            socket.transport.abort()


async def test_listener_comes_back_after_redis_kills_subscribers(
    two: tuple[TestClient, TestClient], redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """CLIENT KILL TYPE pubsub (what an output-buffer overflow does): logged, rebuilt, deliveries resume."""
    first, second = two
    alice, bob = await first.connect(), await second.connect()
    await ask(bob, "join", {"room": "lobby"})
    await eventually(lambda: bob.client_id in first.app.backend.room_members("lobby"))
    reconnects = first.app.backend.health.reconnects
    killed = redis.Redis.from_url(redis_url).client_kill_filter(_type="pubsub")
    assert killed == 2
    await eventually(lambda: first.app.backend.health.reconnects > reconnects)
    await eventually(lambda: first.app.backend.health.connected and second.app.backend.health.connected)
    assert "lost Redis" in caplog.text
    await ask(alice, "say", {"room": "lobby", "text": "still here"})
    assert (await bob.receive()).payload == "still here"


async def test_a_paused_redis_fails_within_the_timeout(redis_server: RedisServer) -> None:
    """Redis that stops answering (SIGSTOP) makes remote work fail with backend_unavailable, never hang."""
    async with TestClient(chat_app(RedisBackend(redis_server.url, timeout=0.5)), real=True) as client:
        alice = await client.connect()
        token = await log_in(alice, "alice")
        assert redis_server.process is not None
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            # local work goes on: a token this process holds needs no round trip
            assert (await ask(alice, "secret", token=token)).payload == "alice"
            error = await ask(alice, "say", {"text": "hello?"})
            assert error.payload["name"] == "backend_unavailable"
            assert "127.0.0.1" not in error.raw, "no address or cause of the failure reaches the client"
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        await eventually(lambda: client.app.backend.health.connected)
        assert (await ask(alice, "say", {"text": "again"})).event == "sent"


async def test_closing_outlasts_a_task_that_swallows_its_cancellation(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A background task that ignores one cancellation (redis-py may, while it connects) does not hang
    close(): it is cancelled again after ``timeout`` seconds, and the operator is told."""
    backend = RedisBackend(redis_url, timeout=0.2)
    stopped = asyncio.Event()

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # swallowed once
            await asyncio.sleep(60)
        try:
            await asyncio.sleep(60)
        finally:
            stopped.set()

    async with TestClient(chat_app(backend), real=True):
        backend._link.spawn(stubborn(), "a stubborn task")  # type: ignore[attr-defined]
        await asyncio.sleep(0)
    assert stopped.is_set()
    assert "1 Redis tasks still running 0.2 s after their cancellation" in caplog.text


async def test_the_commands_of_a_process_reach_redis_in_the_order_they_were_made(redis_url: str) -> None:
    """Commands made from many tasks at once, some awaited (a caller that finds nothing queued sends its own)
    and some queued for the writer, run in Redis in the order they were made."""
    backend = RedisBackend(redis_url)
    link = backend._link  # type: ignore[attr-defined]
    made = itertools.count()

    async def make(seed: int) -> None:
        choose = random.Random(seed)
        for _ in range(300):
            command = ("RPUSH", "order", next(made))
            if choose.random() < 0.5:
                link.enqueue(command, "a test's write")
            else:
                await link.call(command, "a test's write")
            if choose.random() < 0.5:
                await asyncio.sleep(0)

    async with TestClient(chat_app(backend), real=True):
        await asyncio.gather(*(make(seed) for seed in range(8)))
        await link.call(("PING",), "after every write")
        async with redis.asyncio.Redis.from_url(redis_url) as client:
            ran = [int(n) for n in await client.lrange("order", 0, -1)]
    assert ran == list(range(8 * 300))


async def test_an_awaited_command_cancelled_on_its_way_is_cancelled_and_the_writer_goes_on(redis_url: str) -> None:
    """A caller cancelled while its own command is on its way (a handler's timeout, a shutdown) is cancelled
    (redis-py alone would swallow it), and the commands made after it still run, in order."""
    backend = RedisBackend(redis_url)
    link = backend._link  # type: ignore[attr-defined]
    async with TestClient(chat_app(backend), real=True):
        for n in range(20):
            cancelled = asyncio.create_task(link.call(("RPUSH", "cancelled", n), "a test's write"))
            for _ in range(n % 4):  # cancelled before it is sent, while it is written, or while it waits
                await asyncio.sleep(0)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            link.enqueue(("RPUSH", "order", 2 * n), "a test's write")
            await link.call(("RPUSH", "order", 2 * n + 1), "a test's write")
        async with redis.asyncio.Redis.from_url(redis_url) as client:
            ran = [int(n) for n in await client.lrange("order", 0, -1)]
    assert ran == list(range(40))


@pytest.mark.parametrize("room", ["plain", "lobby"])  # lobby keeps history
async def test_a_join_that_failed_leaves_no_membership(redis_server: RedisServer, room: str) -> None:
    """A join refused with backend_unavailable (Redis not answering) leaves the client out of the room:
    here at once, and on every process once Redis is back; a room it was in already, it stays in."""
    make = lambda: RedisBackend(redis_server.url, heartbeat=0.2, timeout=0.5)  # noqa: E731
    async with (
        TestClient(history_app(make()), real=True) as first,
        TestClient(history_app(make()), real=True) as second,
    ):
        alice = await first.connect()
        await alice.send("join", {"room": "elsewhere"})
        await eventually(lambda: "elsewhere" in second.app.backend.rooms_of(alice.client_id))
        assert redis_server.process is not None
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            await alice.send("join", {"room": room})
            error = await alice.receive()
            assert (error.event, error.error_name) == ("error", "backend_unavailable")
            assert first.app.backend.rooms_of(alice.client_id) == {"elsewhere"}
            await alice.send("join", {"room": "elsewhere"})  # again: a member it stays, failed or not
            assert (await alice.receive()).error_name == "backend_unavailable"
            assert first.app.backend.rooms_of(alice.client_id) == {"elsewhere"}
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        await eventually(lambda: first.app.backend.health.connected and second.app.backend.health.connected)
        await asyncio.sleep(0.5)  # whatever was written late has been heard by now
        assert second.app.backend.rooms_of(alice.client_id) == {"elsewhere"}
        assert first.app.backend.rooms_of(alice.client_id) == {"elsewhere"}


async def test_every_failed_operation_is_counted_in_the_log(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Failures are logged a line per 10 s at most, but none is left uncounted: those after the last
    line are told when the app stops, if not before."""
    backend = RedisBackend(redis_server.url, heartbeat=0.2, timeout=0.3)
    async with TestClient(chat_app(backend), real=True) as client:
        alice = await client.connect()
        assert redis_server.process is not None
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            for _ in range(3):
                assert (await ask(alice, "say", {"text": "anyone?"})).error_name == "backend_unavailable"
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        await eventually(lambda: backend.health.connected)
    told = re.findall(r"(\d+) Redis operations failed since the last report", caplog.text)
    assert len(told) >= 2  # the first failure at once, the others later
    assert sum(map(int, told)) == backend.health.failed_operations >= 3


async def test_a_full_redis_never_makes_a_live_process_look_dead(redis_server: RedisServer) -> None:
    """Redis out of memory (maxmemory, noeviction) refuses writes, but not the heartbeats: past
    dead_after, neither process has removed the other's clients, and messages still cross."""
    admin = redis.asyncio.Redis(port=redis_server.port)
    make = lambda: RedisBackend(redis_server.url, heartbeat=0.1, dead_after=0.6, timeout=1.0)  # noqa: E731
    async with TestClient(chat_app(make()), real=True) as first, TestClient(chat_app(make()), real=True) as second:
        alice, bob = await first.connect(), await second.connect()
        await eventually(lambda: sees(first, bob) and sees(second, alice))
        await admin.config_set("maxmemory", "1")
        try:
            await asyncio.sleep(1.5)  # over twice dead_after
            assert sees(first, bob), "A did not take B for dead"
            assert sees(second, alice), "B did not take A for dead"
            assert first.app.backend.health.connected
            assert (await ask(alice, "say", {"text": "still here"})).event == "sent"  # PUBLISH needs no memory
            assert (await bob.receive()).payload == "still here"
        finally:
            await admin.config_set("maxmemory", "0")
    await admin.aclose()


async def test_a_malformed_message_is_logged_and_the_listener_goes_on(
    two: tuple[TestClient, TestClient], redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A message the listener cannot handle is logged with its traceback; the next one is delivered."""
    first, second = two
    alice, bob = await first.connect(), await second.connect()
    await eventually(lambda: sees(first, bob))
    redis.Redis.from_url(redis_url).publish("{websuckets}:all", '{"t": "up", "c": "not a uuid"}')
    await ask(alice, "say", {"text": "after"})
    assert (await bob.receive()).payload == "after"
    assert second.app.backend.health.listener_errors == 1
    assert "cannot handle a message from Redis" in caplog.text


async def test_a_client_of_another_process_is_joined_by_its_own(two: tuple[TestClient, TestClient]) -> None:
    """Session.join of a remote client is carried out by its process; both mirrors then show it in the room."""
    first, second = two
    bob = await second.connect()
    await eventually(lambda: sees(first, bob))
    async with asyncio.timeout(5):
        await first.app.backend.join(bob.client_id, "lobby")
    await eventually(lambda: bob.client_id in first.app.backend.room_members("lobby"))
    assert second.app.backend.get_online(bob.client_id).rooms == {"lobby"}  # type: ignore[union-attr]


async def test_a_send_to_a_dead_process_raises_like_a_closed_socket(redis_url: str, tmp_path: Path) -> None:
    """Until the dead process is reaped, a send to one of its clients raises ConnectionClosed (nobody heard it)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with (
        server_process(redis_url, tmp_path, dead_after=30.0) as (process, port),
        TestClient(chat_app(RedisBackend(redis_url, dead_after=30.0)), real=True) as survivor,
    ):
        socket = await connect(f"ws://127.0.0.1:{port}")
        await eventually(lambda: survivor.app.backend.count_online() == 1)
        (remote,) = survivor.app.backend.online_users()
        process.send_signal(signal.SIGKILL)
        await process.wait()
        with pytest.raises(ConnectionClosed):
            await remote.socket.send("anyone?")
        socket.transport.abort()


async def test_welcome_tells_a_client_its_id(redis_url: str) -> None:
    """WebSuckets(welcome=True) sends each client its socket.id first, so others can address it."""
    async with TestClient(chat_app(RedisBackend(redis_url), welcome=True), real=True) as client:
        alice = await client.connect()
        welcome = await alice.receive()
        assert (welcome.event, welcome.payload) == ("welcome", {"client_id": str(alice.client_id)})


class DeafeningProxy:
    """A TCP proxy to Redis that can swallow what Redis sends to subscribers while keeping TCP open."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.deaf = False
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writers += [writer, upstream_writer]
        subscriber = [False]

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, to_client: bool) -> None:
            while data := await source.read(65536):
                if not to_client and b"SUBSCRIBE" in data.upper():
                    subscriber[0] = True
                if to_client and subscriber[0] and self.deaf:
                    continue  # swallowed: the subscriber hears nothing, and nothing tells it
                sink.write(data)
                await sink.drain()

        with contextlib.suppress(Exception):
            await asyncio.gather(pump(reader, upstream_writer, False), pump(upstream_reader, writer, True))
        writer.close()
        upstream_writer.close()


async def test_a_deaf_subscriber_is_detected_and_rebuilt(redis_server: RedisServer) -> None:
    """A subscription whose messages stop arriving while TCP stays up is noticed and rebuilt; deliveries resume."""
    proxy = DeafeningProxy(redis_server.port)
    async with (
        proxy as url,
        TestClient(chat_app(backend(url)), real=True) as first,
        TestClient(chat_app(backend(redis_server.url)), real=True) as second,
    ):
        alice, bob = await first.connect(), await second.connect()
        await eventually(lambda: sees(first, bob))
        proxy.deaf = True
        await eventually(lambda: not first.app.backend.health.connected, within=10)
        proxy.deaf = False
        await eventually(lambda: first.app.backend.health.reconnects >= 1, within=10)
        await eventually(lambda: sees(second, alice))
        await ask(bob, "say", {"text": "can you hear me?"})
        assert (await alice.receive()).payload == "can you hear me?"


async def test_a_message_for_a_client_that_left_is_counted_and_logged(
    two: tuple[TestClient, TestClient], redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A direct message arriving after its client left is dropped, counted and logged, not lost silently."""
    first, _ = two
    backend = first.app.backend
    assert isinstance(backend, RedisBackend)
    channel = backend.keys.worker_channel(backend.worker_id)
    redis.Redis.from_url(redis_url).publish(channel, '{"t": "s", "c": "%s", "m": "late"}' % ("0" * 32))
    await eventually(lambda: backend.health.dropped_deliveries == 1)
    assert "dropped messages for clients that had left" in caplog.text
