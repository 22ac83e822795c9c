"""RedisBackend on a Redis Cluster: two processes on a ``redis+cluster://`` URL are one app, their keys spread
over the masters, and they follow a slot's move and a master's failover by themselves.

The cluster is real and this module's own (`RedisCluster`: three masters, a replica each, on 127.0.0.1),
started once for the module; each test takes a namespace of its own, and the tests that move a slot or kill
a master come last. Two apps in this test process stand for two server processes, as in
``test_scale_out.py``. The failover test measures the outage window and prints it (``pytest -s`` shows it).

A redis-py without sharded pub/sub (before 8.2, as in ``scripts/check-deps oldest``) refuses a cluster URL at
start-up: there every test here asserts that refusal, on the real cluster, instead of what it tests otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import re
import secrets
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack

import pytest
import redis
from redis_server import RedisCluster
from test_history import history_app, joined, resume, say, texts_until_position
from test_redis_acl import GUIDE, work
from test_redis_sentinel import Probes
from test_scale_out import ask, chat_app, eventually, log_in, sees

from websuckets import History, WebSuckets
from websuckets.backends.redis import RedisBackend
from websuckets.backends.redis.address import FORMS, parse
from websuckets.backends.redis.cluster import ShardedSubscriber, check_redis_py, cluster_client
from websuckets.backends.redis.keys import Keys
from websuckets.exc import BackendUnavailable
from websuckets.remote import RemoteUser
from websuckets.testing import TestClient

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("always::test_redis_cluster.StartRetried")]

REFUSED = check_redis_py()
"""Why this redis-py cannot talk to a cluster (``None``: it can)."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    """Three masters and three replicas of this module's own; killed afterwards."""
    servers = RedisCluster()
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


async def assert_refused(url: str) -> None:
    """``url`` stops the app at start-up in one line naming it and the redis-py version needed."""
    with pytest.raises(BackendUnavailable) as caught:
        async with WebSuckets(backend=RedisBackend(url, timeout=1.0)):
            pass
    message = str(caught.value.details)
    assert "\n" not in message
    assert message.startswith(f"cannot use the Redis URL {url}: Redis Cluster needs redis-py 8.2 or newer")
    assert f"this is redis-py {redis.__version__}" in message


def or_refused(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """``test`` where this redis-py talks to a cluster; where it cannot, a test that the cluster's URL is refused."""
    if REFUSED is None:
        return test

    @functools.wraps(test)
    async def refused(cluster: RedisCluster) -> None:
        await assert_refused(cluster.url())

    del refused.__wrapped__  # pytest reads the signature: this one takes the cluster alone
    refused.__signature__ = inspect.signature(refused)  # type: ignore[attr-defined]
    return refused


class RoomProbes(Probes):
    """`Probes` in a history room: a ``websuckets gap`` (messages lost while the link was rebuilt) is no probe."""

    async def hear(self) -> None:
        while True:
            received = await self.bob.receive(timeout=60)
            if received.event != "websuckets gap":
                self.heard.add(received.payload)


def cluster_backend(url: str, namespace: str) -> RedisBackend:
    return RedisBackend(url, namespace=namespace, heartbeat=0.2, dead_after=1.0, timeout=1.0)


def fresh() -> str:
    """A namespace of this test's own."""
    return "t" + secrets.token_hex(3)


@pytest.fixture(autouse=True)
def whole_cluster(request: pytest.FixtureRequest) -> None:
    """Before each test on the cluster: every node says it is whole (the test before may have changed it)."""
    if "cluster" in request.fixturenames:
        request.getfixturevalue("cluster").wait_healthy()


class StartRetried(UserWarning):
    """An app's start-up on the cluster timed out and was tried once more (`started`)."""


async def started(stack: AsyncExitStack, app: Callable[[], WebSuckets]) -> TestClient:
    """``app()`` started, each its own server. A start-up that found no answer within its bound (2 x
    ``timeout``, 2 s) is tried once more, with a `StartRetried` warning in pytest's summary: on the 2-core
    CI machine a healthy cluster's node once stalled that long (a start-up takes 25 ms otherwise); what
    the tests here check comes after."""
    try:
        return await stack.enter_async_context(TestClient(app(), real=True))
    except BackendUnavailable as exc:
        warnings.warn(f"an app's start-up on the cluster failed, tried once more: {exc}", StartRetried, stacklevel=1)
        return await stack.enter_async_context(TestClient(app(), real=True))


@contextlib.asynccontextmanager
async def two_apps(
    url: str, make: Callable[[RedisBackend], WebSuckets] = chat_app, namespace: str | None = None
) -> AsyncIterator[tuple[TestClient, TestClient]]:
    """Two apps, each its own server, on ``url`` and one namespace."""
    namespace = namespace or fresh()
    async with AsyncExitStack() as stack:
        first = await started(stack, lambda: make(cluster_backend(url, namespace)))
        second = await started(stack, lambda: make(cluster_backend(url, namespace)))
        yield first, second


def keys_of(client: TestClient) -> Keys:
    return client.app.backend.keys  # type: ignore[attr-defined,no-any-return]


@or_refused
async def test_two_apps_on_the_cluster_are_one(cluster: RedisCluster) -> None:
    """Presence, room broadcasts, sends to a user, direct sends to another process's client, and tokens with
    their revocation: two apps on a cluster URL are one, as on one Redis."""
    async with two_apps(cluster.url()) as (first, second):
        alice, bob, carol = await first.connect(), await second.connect(), await second.connect()
        await eventually(lambda: sees(first, bob) and sees(second, alice))
        for member in (alice, bob):
            await ask(member, "join", {"room": "lobby"})
        await eventually(lambda: set(first.app.backend.room_members("lobby")) == {alice.client_id, bob.client_id})
        await ask(alice, "say", {"room": "lobby", "text": "through the cluster"})
        assert (await bob.receive()).payload == "through the cluster"
        await ask(carol, "say", {"text": "all"})
        assert (await alice.receive()).payload == "all"
        assert (await bob.receive()).payload == "all"

        token = await log_in(alice, "alice")
        await ask(carol, "dm", {"to": "alice", "text": "psst"})
        assert (await alice.receive()).payload == "psst"
        assert (await ask(carol, "secret", token=token)).payload == "alice"
        await eventually(lambda: second.app.backend.get_verified("alice") is not None)

        remote = second.app.backend.get_online(alice.client_id)
        assert isinstance(remote, RemoteUser)
        await remote.socket.send('{"event": "direct", "payload": "to your process"}')
        assert (await alice.receive()).payload == "to your process"

        await ask(alice, "logout")
        await eventually(lambda: second.app.backend.get_verified("alice") is None)
        await carol.send("secret", token=token)
        await carol.receive_error("unauthorized")

        await bob.close()
        await eventually(lambda: set(first.app.backend.room_members("lobby")) == {alice.client_id})


@or_refused
async def test_history_and_resume_across_processes(cluster: RedisCluster) -> None:
    """A history room on a cluster: messages numbered by the room's node, and a member of the other process
    that resumes gets exactly what it missed."""
    rooms = {"lobby": History(size=10)}
    async with two_apps(cluster.url(), lambda backend: history_app(backend, rooms)) as (first, second):
        alice, bob = await first.connect(), await second.connect()
        epoch = (await joined(alice)).payload["epoch"]
        await joined(bob)
        await say(alice, "one")
        assert (await bob.receive()).payload == "one"
        await bob.close()
        await say(alice, "two")
        await say(alice, "three")
        again = await second.connect()
        await resume(again, {"lobby": (epoch, 1)})
        await again.send("join", {"room": "lobby"})
        texts, position = await texts_until_position(again)
        assert texts == ["two", "three"]
        assert (position["epoch"], position["recovered"]) == (epoch, True)


@or_refused
async def test_start_up_through_a_node_that_does_not_serve_the_namespace(cluster: RedisCluster) -> None:
    """A URL naming one node that serves none of the namespace's control slot (a master of other slots, or a
    replica) starts: the client learns the layout from it and goes where each key lives."""
    namespace = fresh()
    owner = cluster.owner(Keys(namespace, sharded=True).clients)
    elsewhere = [node.port for node in cluster.running() if node.port != owner]
    for port in elsewhere[:2]:
        url = f"redis+cluster://127.0.0.1:{port}"
        async with two_apps(url, namespace=namespace) as (first, second):
            alice, bob = await first.connect(), await second.connect()
            await ask(bob, "join", {"room": "lobby"})
            await eventually(lambda bob=bob, first=first: bob.client_id in first.app.backend.room_members("lobby"))
            await ask(alice, "say", {"room": "lobby", "text": f"seeded by {port}"})
            assert (await bob.receive()).payload == f"seeded by {port}"


@or_refused
async def test_keys_spread_over_the_masters(cluster: RedisCluster) -> None:
    """A few history rooms: each room's keys and channel share one slot, and the rooms' slots are served by
    two masters or more (the namespace's control keys by one)."""
    rooms = [f"room-{number}" for number in range(8)]
    history = {room: History(size=10) for room in rooms}
    async with two_apps(cluster.url(), lambda backend: history_app(backend, history)) as (first, _):
        member = await first.connect()
        for room in rooms:
            await joined(member, room)
            await say(member, "kept", room)
        keys = keys_of(first)
        owners = set()
        for room in rooms:
            slots = {cluster.slot(key) for key in (*keys.history_keys(room), keys.room_channel(room))}
            assert len(slots) == 1, room
            owner = cluster.owner(keys.history(room))
            assert cluster.client(owner).exists(*keys.history_keys(room)) == 3
            owners.add(owner)
        assert len(owners) >= 2
        assert cluster.slot(keys.clients) == cluster.slot(keys.all)
        assert cluster.slot(keys.room_channel("lobby")) != cluster.slot(keys.clients)


@or_refused
async def test_tokens_spread_over_the_masters(cluster: RedisCluster) -> None:
    """Each token's key is on a slot of its own: a few users' tokens are kept by two masters or more, and each
    is still found, and revoked, from the other process."""
    async with two_apps(cluster.url()) as (first, second):
        users = [await first.connect() for _ in range(8)]
        tokens = [await log_in(user, f"user-{number}") for number, user in enumerate(users)]
        pattern = "{" + keys_of(first).namespace + ":token:*"

        def held() -> dict[int, int]:
            """How many tokens each master holds."""
            return {port: len(cluster.client(port).keys(pattern)) for port in cluster.master_ports()}

        await eventually(lambda: sum(held().values()) == len(tokens))  # a token's write is queued: on its way
        assert len([port for port, count in held().items() if count]) >= 2
        other = await second.connect()
        for number, token in enumerate(tokens):
            assert (await ask(other, "secret", token=token)).payload == f"user-{number}"
        await ask(users[0], "logout")
        await eventually(lambda: second.app.backend.get_verified("user-0") is None)
        await other.send("secret", token=tokens[0])
        await other.receive_error("unauthorized")
        assert (await ask(other, "secret", token=tokens[1])).payload == "user-1"


def documented_cluster_acl() -> list[str]:
    """The rules of the guide's ``ACL SETUSER websuckets ...`` line for a cluster, after the user's name."""
    lines = re.findall(r"^ACL SETUSER websuckets (.*)$", GUIDE.read_text(), re.MULTILINE)
    (line,) = [line for line in lines if "~{websuckets:*" in line]
    return line.split()


@or_refused
async def test_the_guides_cluster_acl_is_enough(cluster: RedisCluster) -> None:
    """The guide's ACL for a cluster, set on every node, is all that two processes need for every kind of
    work: no node refused anything."""
    nodes = [cluster.client(node.port) for node in cluster.running()]
    for node in nodes:
        node.execute_command("ACL", "SETUSER", "websuckets", *documented_cluster_acl())
        node.execute_command("ACL", "LOG", "RESET")
    url = cluster.url().replace("://", "://websuckets:a-long-password@")
    backends = await work(url)
    assert [node.execute_command("ACL", "LOG") for node in nodes] == [[] for _ in nodes], "no permission missing"
    assert [backend.health.failed_operations for backend in backends] == [0, 0]


@or_refused
async def test_a_slot_move_mid_run_is_followed(cluster: RedisCluster) -> None:
    """The slot of a history room (its keys and its channel) moves to another master while two apps use it:
    Redis unsubscribes them from the room's channel, they subscribe again on the new owner, and broadcasts
    arrive again. The room starts a new epoch on its new node (another run id: as after a failover, its
    history is not trusted across the move), and its members are told of the gap."""
    rooms = {"lobby": History(size=100)}
    async with two_apps(cluster.url(), lambda backend: history_app(backend, rooms)) as (first, second):
        alice, bob = await first.connect(), await second.connect()
        epoch = (await joined(alice)).payload["epoch"]
        await joined(bob)
        await say(alice, "before")
        assert (await bob.receive()).payload == "before"
        keys = keys_of(first)
        slot, owner = cluster.slot(keys.history("lobby")), cluster.owner(keys.history("lobby"))
        target = next(port for port in cluster.master_ports() if port != owner)
        probes = RoomProbes(alice, bob)
        hearing = asyncio.create_task(probes.hear())
        try:
            moving = asyncio.create_task(asyncio.to_thread(cluster.move_slot, slot, target))
            await probes.until(moving.done, within=20)
            await moving
        finally:
            hearing.cancel()
            with contextlib.suppress(asyncio.CancelledError, BaseException):
                await hearing
        assert cluster.owner(keys.history("lobby")) == target
        print(f"\nslot move: {probes.report()}")
        position = await say(alice, "after")
        assert position is not None
        assert position.epoch != epoch


@or_refused
async def test_a_direct_send_is_not_refused_while_its_process_channel_moves(cluster: RedisCluster) -> None:
    """The slot of a process's own channel moves while another process sends to its client: no send raises
    ConnectionClosed for that live client (a cluster reads no subscriber count; SPUBLISH counts none while
    the listener subscribes again), and sends arrive again once it has."""
    async with two_apps(cluster.url()) as (first, second):
        alice = await first.connect()
        await eventually(lambda: sees(second, alice))
        remote = second.app.backend.get_online(alice.client_id)
        assert isinstance(remote, RemoteUser)
        channel = keys_of(first).worker_channel(first.app.backend.worker_id)  # type: ignore[attr-defined]
        slot, owner = cluster.slot(channel), cluster.owner(channel)
        target = next(port for port in cluster.master_ports() if port != owner)
        moving = asyncio.create_task(asyncio.to_thread(cluster.move_slot, slot, target))
        loop, sent, until = asyncio.get_running_loop(), 0, math.inf
        while loop.time() < until:  # through the move, and for a second after it (the listener subscribes again)
            await remote.socket.send(f'{{"event": "direct", "payload": {sent}}}')
            sent += 1
            if moving.done() and until == math.inf:
                until = loop.time() + 1.0
            await asyncio.sleep(0.005)
        await moving
        assert cluster.owner(channel) == target

        for _ in range(50):  # until the listener has subscribed again on the new owner
            await remote.socket.send('{"event": "direct", "payload": "after"}')
            with contextlib.suppress(AssertionError):  # nothing within 0.2 s
                while (await alice.receive(timeout=0.2)).payload != "after":
                    pass
                break
        else:
            raise AssertionError("no send arrived after the move")


def connections_named(cluster: RedisCluster, name: str) -> int:
    """How many connections to the cluster's nodes carry the client name ``name`` (CLIENT LIST)."""
    return sum(
        1 for node in cluster.running() for client in cluster.client(node.port).client_list() if client["name"] == name
    )


@or_refused
async def test_a_subscriber_cancelled_while_it_closes_leaves_no_connection_open(cluster: RedisCluster) -> None:
    """The link stops a listener that is closing its subscriber by cancelling it again: the subscriber's
    connections, to every node it listened to, are closed all the same (none outlives the app)."""
    name = fresh()
    seed = ("127.0.0.1", cluster.running()[0].port)
    subscriber = ShardedSubscriber(cluster_client([seed], {"client_name": name}))
    channels = [f"{{{room}}}:channel" for room in ("a", "b", "c", "d")]  # slots on more than one master
    await subscriber.subscribe(*channels)
    assert len({cluster.owner(channel) for channel in channels}) >= 2
    await eventually(lambda: connections_named(cluster, name) >= 2)
    closing = asyncio.create_task(subscriber.aclose())
    await asyncio.sleep(0)  # it has begun: its readers are cancelled, and it waits for them
    closing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await closing
    await eventually(lambda: connections_named(cluster, name) == 0)


@or_refused
async def test_a_manual_failover_is_followed(cluster: RedisCluster) -> None:
    """CLUSTER FAILOVER on the replica of a room's master: the replica takes the slots over, Redis unsubscribes
    the listeners of the old master's channels, both apps subscribe again on the new one, and broadcasts,
    sends to users and tokens work again."""
    async with two_apps(cluster.url()) as (first, second):
        alice, bob = await first.connect(), await second.connect()
        for member in (alice, bob):
            await ask(member, "join", {"room": "lobby"})
        await eventually(lambda: len(first.app.backend.room_members("lobby")) == 2)
        keys = keys_of(first)
        old = cluster.owner(keys.room_channel("lobby"))
        replica = cluster.replica_of(old)
        probes = Probes(alice, bob)
        hearing = asyncio.create_task(probes.hear())
        try:
            cluster.client(replica).execute_command("CLUSTER", "FAILOVER")
            await probes.until(lambda: cluster.serves(keys.room_channel("lobby")) == replica, within=20)
        finally:
            hearing.cancel()
            with contextlib.suppress(asyncio.CancelledError, BaseException):
                await hearing
        print(f"\nCLUSTER FAILOVER: {probes.report()}")
        token = await log_in(alice, "alice")
        assert (await ask(bob, "secret", token=token)).payload == "alice"
        await ask(bob, "dm", {"to": "alice", "text": "after the failover"})
        assert (await alice.receive()).payload == "after the failover"


@pytest.mark.slow
@or_refused
async def test_a_killed_master_is_followed(cluster: RedisCluster) -> None:
    """kill -9 of the master that serves a room's slot: the cluster promotes its replica, both apps follow by
    themselves, and broadcasts arrive again. The outage window is printed."""
    async with two_apps(cluster.url()) as (first, second):
        alice, bob = await first.connect(), await second.connect()
        for member in (alice, bob):
            await ask(member, "join", {"room": "lobby"})
        await eventually(lambda: len(first.app.backend.room_members("lobby")) == 2)
        keys = keys_of(first)
        old = cluster.owner(keys.room_channel("lobby"))
        replica = cluster.replica_of(old)
        probes = Probes(alice, bob)
        hearing = asyncio.create_task(probes.hear())
        try:
            cluster.node(old).kill()
            await probes.until(lambda: cluster.serves(keys.room_channel("lobby")) == replica, within=30)
        finally:
            hearing.cancel()
            with contextlib.suppress(asyncio.CancelledError, BaseException):
                await hearing
        print(f"\nmaster killed (SIGKILL): {probes.report()}")
        token = await log_in(alice, "alice")
        assert (await ask(bob, "secret", token=token)).payload == "alice"


async def test_an_old_redis_py_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A redis-py without asyncio sharded pub/sub (5.0, say) refuses a cluster URL at start-up, in one line
    naming the URL (password hidden) and the version needed."""
    monkeypatch.setattr(redis, "__version__", "5.0.8")
    with pytest.raises(BackendUnavailable) as caught:
        async with WebSuckets(backend=RedisBackend("redis+cluster://:hunter2@127.0.0.1:7000", timeout=0.5)):
            pass
    message = str(caught.value.details)
    assert "\n" not in message
    assert "hunter2" not in message
    assert message.startswith("cannot use the Redis URL redis+cluster://:***@127.0.0.1:7000: ")
    assert "Redis Cluster needs redis-py 8.2 or newer (sharded pub/sub), this is redis-py 5.0.8" in message


def test_the_cluster_forms_are_read_like_redis_urls() -> None:
    """Every seed (default port 6379, IPv6 in brackets), the database 0 only, and query parameters as redis://
    reads them; rediss+cluster:// is TLS."""
    if REFUSED is not None:
        with pytest.raises(ValueError, match=r"needs redis-py 8\.2"):
            parse("redis+cluster://h:1")
        return
    address = parse("redis+cluster://app:pw@[::1]:7000,node.internal?socket_timeout=0.5")
    assert address.seeds == (("::1", 7000), ("node.internal", 6379))
    assert address.options == {"username": "app", "password": "pw", "socket_timeout": 0.5}
    tls = parse("rediss+cluster://h:1/0?ssl_ca_certs=/ca.pem")
    assert tls.options == {"ssl": True, "ssl_ca_certs": "/ca.pem"}
    assert "redis+cluster://" in FORMS
    with pytest.raises(ValueError, match="a cluster has the database 0 only, not '3'"):
        parse("redis+cluster://h:1/3")


@pytest.mark.parametrize("namespace", ["", "app"])
def test_every_cluster_key_has_a_hash_tag(namespace: str) -> None:
    """On a cluster every key and channel carries a non-empty hash tag, ``namespace=""`` too; a room's keys
    and channel share one, a process's channel has its own."""
    keys = Keys(namespace, sharded=True)
    names = [keys.clients, keys.workers, keys.worker("w"), keys.token("t"), keys.epoch, keys.all]
    names += [*keys.history_keys("lobby"), keys.room_channel("lobby"), keys.worker_channel("w")]
    for name in names:
        tag = name[1 : name.index("}")]
        assert name.startswith("{"), name
        assert tag, name
    assert {name[: name.index("}")] for name in (*keys.history_keys("lobby"), keys.room_channel("lobby"))} == {
        "{" + namespace + ":room:lobby"
    }
    assert Keys(namespace).clients == "{" + namespace + "}:clients"  # one Redis: the names of before


async def test_room_channels_off_is_refused_on_a_cluster() -> None:
    """``room_channels=False`` (the namespace's one channel, for 0.1) is refused on a cluster, in one line."""
    backend = RedisBackend("redis+cluster://:hunter2@127.0.0.1:7000", room_channels=False, timeout=0.5)
    with pytest.raises(BackendUnavailable) as caught:
        async with WebSuckets(backend=backend):
            pass
    message = str(caught.value.details)
    assert message == (
        "cannot use the Redis URL redis+cluster://:***@127.0.0.1:7000 with room_channels=False: "
        "a cluster needs room channels"
    )
