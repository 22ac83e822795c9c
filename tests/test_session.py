"""Session.online and Session.verified, User attributes, tokens: expiry and reuse.

The tests that take ``serve`` are part of the backend contract: they run on every backend of
tests/conftest.py's list, each app served over a socket on 127.0.0.1 and in memory.
"""

import asyncio
from collections.abc import Callable

import pytest
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Session, Token, User, WebSuckets
from websuckets.backends import Backend, MemoryBackend
from websuckets.exc import AppStateError, Unauthorized
from websuckets.testing import TestClient, TestConnection

Serve = Callable[..., TestClient]


class Login(BaseModel):
    name: str


def make_app(**options: object) -> WebSuckets:
    app = WebSuckets(**options)  # type: ignore[arg-type]
    group = CommandGroup()

    @group.command("login")
    async def login(socket: ServerConnection, model: Login) -> None:
        user = Session.online[socket.id]
        user.id = model.name
        user.token = Token.generate()
        await socket.send(ClientEvent("token", user.token))

    @group.command("logout")
    async def logout(socket: ServerConnection, user: User) -> None:
        user.token = None
        await socket.send(ClientEvent("bye"))

    @group.command("secret", protected=True)
    async def secret(socket: ServerConnection, user: User) -> None:
        await socket.send(ClientEvent("secret", user.id))

    app.include_command_group(group)
    return app


async def log_in(client: TestClient, name: str) -> tuple[TestConnection, str]:
    connection = await client.connect()
    await connection.send("login", {"name": name})
    return connection, (await connection.receive()).payload


async def test_online_and_verified_follow_connections(serve: Serve) -> None:
    """Clients appear online on connect, verified once id and token are set, and leave both."""
    async with serve(make_app) as client:
        alice = await client.connect()
        assert list(Session.online) == [alice.client_id]
        user = Session.online[alice.client_id]
        assert (user.socket.id, user.id, user.token, user.verified) == (alice.client_id, None, None, False)
        assert len(Session.verified) == 0

        await alice.send("login", {"name": "alice"})
        await alice.receive()
        assert user.verified
        assert dict(Session.verified) == {"alice": user}

        await alice.send("logout")
        await alice.receive()
        assert "alice" not in Session.verified

        await alice.close()
        assert alice.client_id not in Session.online
        assert len(Session.online) == 0


async def test_protected_command_needs_a_valid_token(serve: Serve) -> None:
    """No token, a wrong token, or a revoked one: unauthorized. The right one passes."""
    async with serve(make_app) as client:
        alice = await client.connect()
        await alice.send("secret")
        assert (await alice.receive_error("unauthorized")).payload["details"] == "this command needs a token"
        await alice.send("login", {"name": "alice"})
        token = (await alice.receive()).payload
        await alice.send("secret", token=Token.generate())
        await alice.receive_error("unauthorized")
        await alice.send("secret", token=token)
        assert (await alice.receive()).payload == "alice"
        await alice.send("logout")
        await alice.receive()
        await alice.send("secret", token=token)
        await alice.receive_error("unauthorized")


async def test_token_from_an_earlier_connection_verifies_a_new_one(serve: Serve) -> None:
    """A client that reconnects with its token is the same user again."""
    async with serve(make_app) as client:
        alice, token = await log_in(client, "alice")
        await alice.close()
        again = await client.connect()
        await again.send("secret", token=token)
        assert (await again.receive()).payload == "alice"
        assert Session.verified["alice"] is Session.online[again.client_id]


async def test_tokens_expire(serve: Serve) -> None:
    """After token_ttl seconds a token no longer opens protected commands, and the client is told it expired."""
    async with serve(make_app, token_ttl=0.05) as client:
        alice, token = await log_in(client, "alice")
        await alice.send("secret", token=token)
        await alice.receive()
        await asyncio.sleep(0.1)
        for _ in range(2):  # told every time, not only the first
            await alice.send("secret", token=token)
            error = await alice.receive_error("unauthorized")
            assert error.payload["details"] == "the token has expired"
        again = await client.connect()  # on another connection too
        await again.send("secret", token=token)
        assert (await again.receive_error("unauthorized")).payload["details"] == "the token has expired"
        assert "alice" not in Session.verified


async def test_unauthorized_says_why(serve: Serve) -> None:
    """Three stable texts: no token, a token the app does not know, an expired one."""
    async with serve(make_app, token_ttl=0.2) as client:
        alice, token = await log_in(client, "alice")
        await alice.send("secret")
        assert (await alice.receive_error("unauthorized")).payload["details"] == Unauthorized.MISSING
        await alice.send("secret", token=Token.generate())
        assert (await alice.receive_error("unauthorized")).payload["details"] == Unauthorized.INVALID
        await alice.send("logout")
        await alice.receive()
        await alice.send("secret", token=token)  # revoked is not expired
        assert (await alice.receive_error("unauthorized")).payload["details"] == Unauthorized.INVALID
        bob, token = await log_in(client, "bob")
        await asyncio.sleep(0.25)
        await bob.send("secret", token=token)
        assert (await bob.receive_error("unauthorized")).payload["details"] == Unauthorized.EXPIRED
    assert (Unauthorized.MISSING, Unauthorized.INVALID) == (
        "this command needs a token",
        "the token is invalid or has expired",  # the texts before expiry had its own: kept for clients matching them
    )


async def test_backend_holds_the_state(serve: Serve) -> None:
    """Presence, verified users and tokens live in the backend the app was given."""
    async with serve(make_app) as client:
        backend = client.app.backend
        alice, token = await log_in(client, "alice")
        assert backend.count_online() == 1
        assert backend.get_verified("alice") is Session.online[alice.client_id]
        record = await backend.find_token(Token.digest(token))
        assert record is not None
        assert record.user_id == "alice"
        assert await backend.find_token(token) is None  # looked up by digest only
        assert token not in repr(vars(backend)), "the backend holds only digests of tokens"


async def test_tokens_never_reach_the_log(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    """Even at DEBUG level, no server log record carries a token (the test's own client may)."""
    caplog.set_level("DEBUG")
    async with serve(make_app) as client:
        alice, token = await log_in(client, "alice")
        await alice.send("secret", token=token[::-1])
        await alice.receive_error("unauthorized")
        await alice.send("secret", token=token)
        await alice.receive()
    server_records = [r for r in caplog.records if r.name.startswith("websuckets")]
    assert server_records
    assert not [r for r in server_records if token in r.getMessage() or token[::-1] in r.getMessage()]


def test_session_outside_a_running_app_says_so() -> None:
    """Reading Session with no app serving is a clear error, not an empty dict."""
    with pytest.raises(AppStateError, match="no websuckets app is running"):
        len(Session.online)


async def test_expired_tokens_are_swept_from_memory() -> None:
    """The memory backend drops expired tokens as new ones arrive, so it does not grow forever."""
    import time

    from websuckets.backends import TokenRecord

    backend = MemoryBackend()
    past = time.time() - 1
    for _ in range(backend.PRUNE_MINIMUM - 1):
        backend.remember_token(Token.generate(), TokenRecord("old", past))
    live = Token.generate()
    backend.remember_token(live, TokenRecord("alice", time.time() + 60))
    assert len(backend._tokens) == 1
    record = await backend.find_token(live)
    assert record is not None
    assert record.user_id == "alice"


def make_multi_app(**options: object) -> WebSuckets:
    """An app whose handlers set and clear identities in every order users write."""
    app = make_app(**options)
    group = CommandGroup("x")

    @group.command("token first")
    async def token_first(socket: ServerConnection, model: Login, user: User) -> None:
        user.token = Token.generate()
        user.id = model.name
        await socket.send(ClientEvent("token", user.token))

    @group.command("forget id")
    async def forget_id(socket: ServerConnection, user: User) -> None:
        user.id = None
        await socket.send(ClientEvent("forgotten"))

    app.include_command_group(group)
    return app


async def test_a_user_on_two_connections_stays_verified_until_both_leave(serve: Serve) -> None:
    """Session.verified keeps a user while any of its connections is verified."""
    async with serve(make_multi_app) as client:
        laptop, _ = await log_in(client, "alice")
        phone, _ = await log_in(client, "alice")
        assert Session.verified["alice"] is Session.online[phone.client_id]
        await phone.close()
        assert Session.verified["alice"] is Session.online[laptop.client_id]
        await laptop.close()
        assert "alice" not in Session.verified


async def test_setting_the_token_before_the_id_also_verifies(serve: Serve) -> None:
    """Either order of setting User.token and User.id verifies the user with a working token."""
    async with serve(make_multi_app) as client:
        alice = await client.connect()
        await alice.send("x token first", {"name": "alice"})
        reply = await alice.receive()
        assert "alice" in Session.verified
        await alice.send("secret", token=reply.payload)
        assert (await alice.receive()).payload == "alice"


async def test_logging_out_revokes_the_token_on_every_connection(serve: Serve) -> None:
    """A cleared token stops working, and connections that reused it are no longer verified."""
    async with serve(make_multi_app) as client:
        alice, token = await log_in(client, "alice")
        tab = await client.connect()
        await tab.send("secret", token=token)
        await tab.receive()
        assert Session.online[tab.client_id].verified
        await alice.send("logout")
        await alice.receive()
        assert not Session.online[tab.client_id].verified
        assert "alice" not in Session.verified
        await tab.send("secret", token=token)
        await tab.receive_error("unauthorized")


async def test_clearing_the_id_logs_out(serve: Serve) -> None:
    """Setting User.id = None unverifies the user and revokes its token."""
    async with serve(make_multi_app) as client:
        alice, token = await log_in(client, "alice")
        await alice.send("x forget id")
        await alice.receive()
        assert Session.online[alice.client_id].token is None
        await alice.send("secret", token=token)
        await alice.receive_error("unauthorized")


async def test_an_expired_token_unverifies_its_holders(serve: Serve) -> None:
    """Once a token is found expired, the connections verified with it are unverified."""
    async with serve(make_multi_app, token_ttl=0.05) as client:
        alice, token = await log_in(client, "alice")
        await asyncio.sleep(0.1)
        await alice.send("secret", token=token)
        await alice.receive_error("unauthorized")
        assert "alice" not in Session.verified


async def test_session_falls_back_to_an_app_still_running() -> None:
    """With two apps started, stopping the later one leaves Session reading the earlier one."""
    first, second = make_app(), make_app()
    async with TestClient(first) as client:
        alice = await client.connect()
        async with TestClient(second):
            assert alice.client_id not in Session.online
        assert alice.client_id in Session.online


class LookupBackend(MemoryBackend):
    """A backend that keeps the base class's one-by-one ``online_users``."""

    online_users = Backend.online_users


async def test_online_values_are_every_connected_user_at_once(serve: Serve) -> None:
    """``Session.online.values()`` holds every connected User, and stays whole while one leaves."""
    async with serve(make_app) as client:
        await check_online_values(client)


async def test_the_base_class_online_users_does_the_same() -> None:
    """A backend that keeps ``Backend.online_users`` (one lookup a user) gives the same ``values()``."""
    async with TestClient(make_app(backend=LookupBackend())) as client:
        await check_online_values(client)


async def check_online_values(client: TestClient) -> None:
    alice, bob = await client.connect(), await client.connect()
    users = Session.online.values()
    assert len(users) == 2
    assert {user.client_id for user in users} == {alice.client_id, bob.client_id}
    assert Session.online[alice.client_id] in users
    await bob.close()
    for _ in range(100):  # until the server has seen bob leave
        if len(Session.online) == 1:
            break
        await asyncio.sleep(0.01)
    assert len(users) == 2  # the snapshot taken before bob left
    assert [user.client_id for user in Session.online.values()] == [alice.client_id]
