"""The demo chat that `bash scripts/demo` serves: sign up, log in, list users, direct messages."""

import pytest
from examples_loader import load_example

from websuckets.testing import ErrorReply, TestClient, TestConnection


async def sign_up_and_log_in(client: TestClient, login: str) -> tuple[TestConnection, str]:
    connection = await client.connect()
    credentials = {"login": login, "password": f"{login}-secret"}
    await connection.request("user create", credentials)
    reply = await connection.request("user auth", credentials)
    return connection, reply.payload["token"]


async def test_two_users_chat(real: bool) -> None:
    """Alice and Bob sign up, log in, see each other listed, and Alice messages Bob."""
    chat = load_example("chat.py")
    async with TestClient(chat.create_app(), real=real) as client:
        alice, alice_token = await sign_up_and_log_in(client, "alice")
        bob, _ = await sign_up_and_log_in(client, "bob")

        listed = await alice.request("user list", token=alice_token)
        assert listed.payload == ["alice", "bob"]

        sent = await alice.request("chat send", {"to": "bob", "text": "hi bob"}, token=alice_token)
        assert sent.event == "message sent"
        incoming = await bob.receive()
        assert (incoming.event, incoming.payload) == ("incoming message", {"from": "alice", "text": "hi bob"})


async def test_errors_a_user_can_hit(real: bool) -> None:
    """A taken login, wrong password, missing token and an offline receiver each get a named error."""
    chat = load_example("chat.py")
    async with TestClient(chat.create_app(), real=real) as client:
        alice, token = await sign_up_and_log_in(client, "alice")
        cases = [
            ("user create", {"login": "alice", "password": "other-pass"}, None, "login_taken"),
            ("user auth", {"login": "alice", "password": "wrong-pass"}, None, "bad_credentials"),
            ("user list", None, None, "unauthorized"),
            ("chat send", {"to": "carol", "text": "hello?"}, token, "not_online"),
            ("chat send", {"to": "carol", "text": ""}, token, "validation_error"),
        ]
        for event, payload, with_token, name in cases:
            with pytest.raises(ErrorReply) as caught:
                await alice.request(event, payload, token=with_token)
            assert caught.value.name == name
