"""The demo chat that `bash scripts/demo` serves: sign up, log in, list users, direct messages."""

import asyncio
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from examples_loader import load_example

from websuckets.static import CLIENT_JS
from websuckets.testing import ErrorReply, TestClient, TestConnection

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


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


async def test_the_demo_serves_its_page_and_the_client() -> None:
    """On the chat's own port, / is the browser page and /websuckets.js the client it imports."""
    chat = load_example("chat.py")
    app = chat.create_app()
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        for path, expected in [("/", b"<title>websuckets chat</title>"), ("/chat.js", b'from "/websuckets.js"')]:
            status, body = await asyncio.wait_for(asyncio.to_thread(http_get, f"http://127.0.0.1:{port}{path}"), 10)
            assert status == 200
            assert expected in body
        status, body = await asyncio.wait_for(asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/websuckets.js"), 10)
        assert (status, body) == (200, CLIENT_JS.read_bytes())


def http_get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def test_the_demo_prints_the_page_to_open() -> None:
    """``python examples/chat.py`` (what ``bash scripts/demo`` runs) prints the URL of its page, which answers."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WEBSUCKETS_HOST": "127.0.0.1", "WEBSUCKETS_PORT": "0"}
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "chat.py")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        serving, page = process.stdout.readline(), process.stdout.readline()
        assert serving.startswith("websuckets: serving on ws://127.0.0.1:"), serving
        found = re.fullmatch(r"websuckets: open (http://127\.0\.0\.1:\d+/) in a browser\n", page)
        assert found, page
        status, body = http_get(found.group(1))
        assert status == 200
        assert b"<title>websuckets chat</title>" in body
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
