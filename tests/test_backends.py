"""The backend contract: the same behaviour on MemoryBackend and RedisBackend (a real redis-server).

Presence, verified users, shared attributes, tokens (expiry, revocation, digests only) and
rooms, through the public API of a running app.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from uuid import UUID

import pytest
import redis
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Session, Token, User, WebSuckets
from websuckets.backends import Backend
from websuckets.backends.redis import RedisBackend
from websuckets.testing import Received, TestClient, TestConnection

BackendFactory = Callable[[], Backend]
ROOT = Path(__file__).resolve().parent.parent


class Login(BaseModel):
    name: str


class Room(BaseModel):
    room: str


class Say(BaseModel):
    room: str | None = None
    text: str


class Dm(BaseModel):
    to: str
    text: str


def chat_app(backend: Backend, **options: object) -> WebSuckets:
    """A small app that uses every part of the contract."""
    app = WebSuckets(backend=backend, **options)  # type: ignore[arg-type]
    group = CommandGroup()

    @group.command("login")
    async def login(socket: ServerConnection, model: Login, user: User) -> None:
        user.id = model.name
        user.token = Token.generate()
        user.login = model.name  # type: ignore[attr-defined]  # any attribute may be stored
        await socket.send(ClientEvent("token", user.token))

    @group.command("logout")
    async def logout(socket: ServerConnection, user: User) -> None:
        user.token = None
        await socket.send(ClientEvent("bye"))

    @group.command("secret", protected=True)
    async def secret(socket: ServerConnection, user: User) -> None:
        await socket.send(ClientEvent("secret", user.id))

    @group.command("join")
    async def join(socket: ServerConnection, model: Room) -> None:
        await Session.join(socket.id, model.room)
        await socket.send(ClientEvent("joined", sorted(Session.online[socket.id].rooms)))

    @group.command("leave")
    async def leave(socket: ServerConnection, model: Room) -> None:
        await Session.leave(socket.id, model.room)
        await socket.send(ClientEvent("left", sorted(Session.online[socket.id].rooms)))

    @group.command("say")
    async def say(socket: ServerConnection, model: Say) -> None:
        await Session.broadcast(ClientEvent("said", model.text), room=model.room, exclude=socket.id)
        await socket.send(ClientEvent("sent"))

    @group.command("dm")
    async def dm(socket: ServerConnection, model: Dm) -> None:
        await Session.send_to_user(model.to, ClientEvent("dm", model.text))
        await socket.send(ClientEvent("sent"))

    app.include_command_group(group)
    return app


@pytest.fixture
async def client(make_backend: BackendFactory) -> AsyncIterator[TestClient]:
    async with TestClient(chat_app(make_backend()), real=True) as client:
        yield client


async def ask(connection: TestConnection, event: str, payload: object = None, token: str | None = None) -> Received:
    """Send a command and return the next event (these handlers answer without the command's id)."""
    await connection.send(event, payload, token=token)
    return await connection.receive()


async def log_in(connection: TestConnection, name: str) -> str:
    return (await ask(connection, "login", {"name": name})).payload  # type: ignore[no-any-return]


async def test_presence_and_verified_users(client: TestClient) -> None:
    """Clients are online while connected, verified once logged in, and leave both on disconnect."""
    alice, bob = await client.connect(), await client.connect()
    assert set(Session.online) == {alice.client_id, bob.client_id}
    await log_in(alice, "alice")
    assert set(Session.verified) == {"alice"}
    assert Session.verified["alice"].client_id == alice.client_id
    assert Session.online[alice.client_id].login == "alice"  # type: ignore[attr-defined]
    await alice.close()
    assert alice.client_id not in Session.online
    assert "alice" not in Session.verified
    assert len(Session.online) == 1


async def test_tokens_are_stored_as_digests_and_revocable(client: TestClient) -> None:
    """A token works on a second connection, never sits in the backend in clear, and dies on logout."""
    alice = await client.connect()
    token = await log_in(alice, "alice")
    backend = client.app.backend
    assert await backend.find_token(token) is None
    record = await backend.find_token(Token.digest(token))
    assert record is not None
    assert record.user_id == "alice"

    second = await client.connect()
    assert (await ask(second, "secret", token=token)).payload == "alice"
    await ask(alice, "logout")
    assert await backend.find_token(Token.digest(token)) is None
    await second.send("secret", token=token)
    await second.receive_error("unauthorized")


async def test_rooms_membership_and_broadcast(client: TestClient) -> None:
    """Members of a room get its broadcasts (not the sender); leaving or disconnecting ends membership."""
    alice, bob, carol = await client.connect(), await client.connect(), await client.connect()
    assert (await ask(alice, "join", {"room": "lobby"})).payload == ["lobby"]
    assert (await ask(bob, "join", {"room": "lobby"})).payload == ["lobby"]
    assert set(Session.room("lobby")) == {alice.client_id, bob.client_id}
    assert len(Session.room("nowhere")) == 0

    await ask(alice, "say", {"room": "lobby", "text": "hi"})
    assert (await bob.receive()).payload == "hi"

    await ask(carol, "say", {"text": "to all"})  # no room: everyone but carol
    assert (await alice.receive()).payload == "to all"
    assert (await bob.receive()).payload == "to all"

    assert (await ask(bob, "leave", {"room": "lobby"})).payload == []
    await ask(carol, "say", {"room": "lobby", "text": "still there?"})
    assert (await alice.receive()).payload == "still there?"
    await alice.close()
    assert len(Session.room("lobby")) == 0
    await ask(carol, "say", {"room": "lobby", "text": "echo"})
    assert bob.history[-1] != ClientEvent("said", "echo")


async def test_send_to_user_reaches_every_connection(client: TestClient) -> None:
    """send_to_user delivers to every connection verified as that user, and to nobody else."""
    phone, laptop, other = await client.connect(), await client.connect(), await client.connect()
    await log_in(phone, "alice")
    await log_in(laptop, "alice")
    await log_in(other, "bob")
    await ask(other, "dm", {"to": "alice", "text": "psst"})
    assert (await phone.receive()).payload == "psst"
    assert (await laptop.receive()).payload == "psst"


async def test_joining_a_client_that_is_not_connected_is_a_key_error(client: TestClient) -> None:
    """Session.join names an unknown client with KeyError."""
    await client.connect()
    with pytest.raises(KeyError):
        await Session.join(UUID(int=1), "lobby")


async def test_expired_tokens_stop_working(make_backend: BackendFactory) -> None:
    """A token past its TTL is refused, on either backend."""
    async with TestClient(chat_app(make_backend(), token_ttl=0.3), real=True) as client:
        alice = await client.connect()
        token = await log_in(alice, "alice")
        assert (await ask(alice, "secret", token=token)).payload == "alice"
        await asyncio.sleep(0.4)
        await alice.send("secret", token=token)
        await alice.receive_error("unauthorized")


async def test_redis_holds_no_raw_token(redis_url: str) -> None:
    """A dump of every key and value in Redis contains no usable token."""
    async with TestClient(chat_app(RedisBackend(redis_url)), real=True) as client:
        alice = await client.connect()
        token = await log_in(alice, "alice")
        dump = redis.Redis.from_url(redis_url)
        for _ in range(500):  # the token is written just after the reply that carries it
            if dump.exists("{websuckets}:token:" + Token.digest(token)):
                break
            await asyncio.sleep(0.01)
        everything = b"".join(key + (dump.dump(key) or b"") for key in dump.scan_iter())
        assert Token.digest(token).encode() in everything
        assert token.encode() not in everything


def test_another_backend_runs_the_contract_alone() -> None:
    """``pytest -m backend_contract --backend MODULE:FACTORY`` runs only the contract, only on that backend;
    a factory that takes an argument gets a redis-server's URL; a wrong name is a usage error."""
    run = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", "-m", "backend_contract"]
    memory, redis_backend = "websuckets.backends:MemoryBackend", "websuckets.backends.redis:RedisBackend"
    chosen = ["--backend", memory, "--backend", redis_backend, "tests/test_delivery.py", "-k", "framed_once"]
    done = subprocess.run([*run, *chosen], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    passed = sorted(line.split("[")[-1] for line in done.stdout.splitlines() if line.startswith("PASSED"))
    assert passed == [f"{redis_backend}]", f"{memory}]"], done.stdout
    assert "2 passed, 2 deselected" in done.stdout  # the file's other test, and no memory or redis run

    wrong = subprocess.run(
        [*run, "--backend", "websuckets.backends:Nope", "tests/test_delivery.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert wrong.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--backend 'websuckets.backends:Nope'" in wrong.stderr
