"""RedisBackend's mirror: other processes' records applied to this process's Presence, without Redis."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import pytest
from websockets.exceptions import ConnectionClosed

from websuckets import WebSuckets
from websuckets.backends.redis.codec import ClientRecord
from websuckets.backends.redis.mirror import Mirror
from websuckets.presence import Presence
from websuckets.remote import RemoteUser
from websuckets.testing import TestClient

HERE, THERE = "here:1:aa", "there:2:bb"
ALICE, BOB = UUID(int=1), UUID(int=2)

Sent = list[tuple[UUID, str, "str | bytes"]]


@pytest.fixture
def sent() -> Sent:
    """What the mirror's remote sockets sent, through the backend's ``deliver``."""
    return []


@pytest.fixture
def mirror(sent: Sent) -> Mirror:
    async def deliver(client_id: UUID, worker: str, message: str | bytes) -> None:
        sent.append((client_id, worker, message))

    return Mirror(Presence(), HERE, deliver)


async def nowhere(client_id: UUID, worker: str, message: str | bytes) -> None:
    raise AssertionError("nothing is sent")


def record(
    user_id: str | None = None, rooms: tuple[str, ...] = (), worker: str = THERE, **attributes: Any
) -> ClientRecord:
    return ClientRecord(worker, user_id, attributes, rooms, ("10.0.0.1", 5000))


class LocalUser:
    """A client connected to this process, as far as the mirror looks at it: not a RemoteUser."""

    client_id = BOB
    connected_here = True


def remote(mirror: Mirror, client_id: UUID) -> RemoteUser:
    user = mirror.presence.online[client_id]
    assert isinstance(user, RemoteUser)
    return user


async def test_a_record_from_another_process_appears_as_a_remote_user(mirror: Mirror, sent: Sent) -> None:
    """A client of another process is online here, with its address, worker and attributes, read-only."""
    mirror.apply(ALICE, record(login="alice"))
    alice = remote(mirror, ALICE)
    assert (alice.login, alice.socket.worker, alice.socket.remote_address) == ("alice", THERE, ("10.0.0.1", 5000))
    assert not alice.verified
    await alice.socket.send("hi")
    assert sent == [(ALICE, THERE, "hi")]


def test_rooms_in_a_record_are_joined_and_left(mirror: Mirror) -> None:
    """The rooms of each new record are the client's rooms: joined, and left when a later record drops them."""
    mirror.apply(ALICE, record(rooms=("chat", "lobby")))
    assert remote(mirror, ALICE).rooms == {"chat", "lobby"}
    assert list(mirror.presence.members("lobby")) == [ALICE]
    mirror.apply(ALICE, record(rooms=("lobby", "news")))
    assert remote(mirror, ALICE).rooms == {"lobby", "news"}
    assert "chat" not in mirror.presence.rooms
    assert list(mirror.presence.members("news")) == [ALICE]


def test_a_verified_record_indexes_the_user_by_its_id(mirror: Mirror) -> None:
    """A user id in the record verifies the client under that id; another id moves it; none unverifies it."""
    mirror.apply(ALICE, record())
    assert mirror.presence.verified == {}
    mirror.apply(ALICE, record("alice"))
    assert mirror.presence.latest_verified("alice") is remote(mirror, ALICE)
    mirror.apply(ALICE, record("alice2"))
    assert list(mirror.presence.verified) == ["alice2"]
    mirror.apply(ALICE, record(None))
    assert mirror.presence.verified == {}
    assert not remote(mirror, ALICE).verified


def test_attributes_follow_the_latest_record(mirror: Mirror) -> None:
    """An attribute the process no longer shares disappears; new and changed ones are readable."""
    mirror.apply(ALICE, record(login="alice", colour="red"))
    mirror.apply(ALICE, record(login="alice", mood="calm"))
    alice = remote(mirror, ALICE)
    assert (alice.login, alice.mood, hasattr(alice, "colour")) == ("alice", "calm", False)


async def test_a_removed_client_leaves_every_index_and_its_socket_closes(mirror: Mirror) -> None:
    """Forgotten: out of online, verified and its rooms; a send to it raises like a closed socket."""
    mirror.apply(ALICE, record("alice", rooms=("lobby",)))
    alice = remote(mirror, ALICE)
    mirror.forget(ALICE)
    assert (mirror.presence.online, mirror.presence.verified, mirror.presence.rooms) == ({}, {}, {})
    with pytest.raises(ConnectionClosed):
        await alice.socket.send("late")
    mirror.forget(ALICE)  # twice: nothing more happens


def test_own_records_and_local_clients_are_left_alone(mirror: Mirror) -> None:
    """This process's own records are not mirrored, and a record never replaces a client connected here."""
    mirror.apply(ALICE, record(worker=HERE))
    assert mirror.presence.online == {}
    local = LocalUser()
    mirror.presence.add(local)  # type: ignore[arg-type]  # what the mirror checks of a User of this process
    mirror.apply(BOB, record("bob"))
    mirror.forget(BOB)
    assert mirror.presence.online == {BOB: local}
    assert mirror.presence.verified == {}


def test_members_of_other_processes_do_not_count_as_members_here(mirror: Mirror) -> None:
    """`Presence.has_members_here`, which decides whether this process listens to a room, counts its own only."""
    mirror.apply(ALICE, record(rooms=("lobby",)))
    assert not mirror.presence.has_members_here("lobby")
    local = LocalUser()
    mirror.presence.add(local)  # type: ignore[arg-type]
    mirror.presence.join(local, "lobby")  # type: ignore[arg-type]
    mirror.presence.join(local, "lobby")  # type: ignore[arg-type]  # again: still one
    assert mirror.presence.has_members_here("lobby")
    mirror.presence.leave(local, "lobby")  # type: ignore[arg-type]
    assert not mirror.presence.has_members_here("lobby")
    assert list(mirror.presence.members("lobby")) == [ALICE]
    mirror.presence.join(local, "lobby")  # type: ignore[arg-type]
    mirror.presence.remove(local)  # type: ignore[arg-type]
    assert not mirror.presence.has_members_here("lobby")
    assert mirror.presence.here == {}


def test_loading_makes_the_mirror_what_redis_holds(mirror: Mirror) -> None:
    """After a reconnection: clients Redis no longer holds are forgotten, the others applied."""
    carol = UUID(int=3)
    mirror.apply(ALICE, record("alice", rooms=("lobby",)))
    mirror.apply(BOB, record("bob"))
    stored = {BOB.hex: record("bob", rooms=("lobby",)).encode(), carol.hex: record(login="carol").encode()}
    stored[UUID(int=4).hex] = record(worker=HERE).encode()  # its own: not mirrored
    mirror.load(stored)
    assert set(mirror.presence.online) == {BOB, carol}
    assert list(mirror.presence.members("lobby")) == [BOB]
    assert list(mirror.presence.verified) == ["bob"]
    assert remote(mirror, carol).login == "carol"


async def test_a_local_clients_record_holds_what_it_shares(caplog: pytest.LogCaptureFixture) -> None:
    """JSON attributes are shared; private names, the socket and the token are not; a non-JSON value stays
    on this process, said once in the log."""
    async with TestClient(WebSuckets()) as client:
        connection = await client.connect()
        user = client.app.backend.get_online(connection.client_id)
        assert user is not None
        user.login, user._private, user.lock = "alice", "hidden", object()
        mirror = Mirror(Presence(), HERE, nowhere)
        with caplog.at_level(logging.WARNING, "websuckets.redis"):
            shared = mirror.record(user)
            mirror.record(user)
        assert shared == ClientRecord(HERE, None, {"login": "alice"}, (), user.socket.remote_address)
        assert caplog.text.count("User.lock holds") == 1
