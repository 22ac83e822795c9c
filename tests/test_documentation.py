"""The original documentation's examples behave as it describes (in memory and over a socket)."""

import re

from examples_loader import load_example

from websuckets.session import Session
from websuckets.testing import TestClient


async def test_app_without_commands_answers_every_message_with_an_error(real: bool) -> None:
    """With no command registered, every message gets an error back."""
    app = load_example("docs/app.py").app
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        for command in ('{"event": "get all users"}', '{"event": "get all posts"}'):
            await alice.send_raw(command)
            await alice.receive_error("unknown_command")


async def test_say_ok(real: bool) -> None:
    """A handler may send a plain string; its command answers by its name."""
    app = load_example("docs/say_ok.py").app
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("say ok")
        assert await alice.receive_text() == "ok"


async def test_model_handler_returns_the_payload(real: bool) -> None:
    """The prefixed command validates its payload into the model and echoes it."""
    app = load_example("docs/user_create.py").app
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("user create", {"nickname": "athropyne", "password": "SecretpaSSword"})
        assert await alice.receive_text() == '{"nickname":"athropyne","password":"SecretpaSSword"}'
        await alice.send("create", {"nickname": "athropyne", "password": "SecretpaSSword"})
        await alice.receive_error("unknown_command")


async def test_send_message_between_clients(real: bool) -> None:
    """One client messages another by its client id; a missing receiver is an InternalError."""
    app = load_example("docs/send_message.py").app
    async with TestClient(app, real=real) as client:
        alice, bob = await client.connect(), await client.connect()
        assert alice.client_id != bob.client_id
        assert set(Session.online) == {alice.client_id, bob.client_id}
        await alice.send("send message", {"to": str(bob.client_id), "text": "hi"})
        assert (await alice.receive()).raw == '{"event":"message sent","payload":null}'
        incoming = await bob.receive()
        assert (incoming.event, incoming.payload) == (
            "incoming message",
            {"author": str(alice.client_id), "text": "hi"},
        )

        await bob.close()
        await alice.send("send message", {"to": str(bob.client_id), "text": "still there?"})
        error = await alice.receive_error("такой клиент не подключен")
        assert error.payload["details"] is None


async def test_register_authenticate_and_call_a_protected_command(real: bool) -> None:
    """create, auth (which verifies the user and returns a token), then the protected 'get list'."""
    module = load_example("docs/protected.py")
    async with TestClient(module.app, real=real) as client:
        alice = await client.connect()
        credentials = {"login": "athropyne", "password": "SecretpaSSword"}
        await alice.send("get list")
        assert (await alice.receive_error("unauthorized")).payload["event"] == "get list"

        await alice.send("create", credentials)
        assert (await alice.receive()).event == "user created"
        await alice.send("create", credentials)
        duplicate = await alice.receive_error("дубль")
        assert duplicate.payload["details"] == "Пользователь с таким логином уже существует"

        await alice.send("auth", {"login": "athropyne", "password": "wrong"})
        await alice.receive_error("неверный пароль")
        await alice.send("auth", {"login": "nobody", "password": "x"})
        await alice.receive_error("пользователь не найден")

        await alice.send("auth", credentials)
        reply = await alice.receive()
        assert reply.event == "new token"
        token = reply.payload
        assert re.fullmatch(r"[0-9a-f]{32}", token)
        user = Session.online[alice.client_id]
        assert Session.verified[user.id] is user
        assert user.login == "athropyne"

        await alice.send("get list", token="0" * 32)
        await alice.receive_error("unauthorized")
        await alice.send("get list", token=token)
        users = await alice.receive()
        assert users.event == "users list"
        assert users.payload == [{"login": "athropyne", "id": module.DATABASE[0]["id"]}]

        await alice.close()
        assert user.id not in Session.verified
        assert alice.client_id not in Session.online
