"""Every example of the documentation, copied to main.py and run with `python main.py`, serves as described."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
URL = "ws://localhost:9000"


@contextmanager
def running(example: str, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Run examples/<example> as main.py in an empty folder until it prints its address."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 9000)) == 0:
            pytest.fail("port 9000 is taken: the documentation's examples serve there")
    shutil.copy(EXAMPLES / example, tmp_path / "main.py")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "main.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "serving on ws://localhost:9000" in line, line + process.stderr.read()  # type: ignore[union-attr]
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        if not example.startswith("docs/"):  # only the original documentation's programs import a deprecated name
            assert "Warning" not in stderr, stderr


@asynccontextmanager
async def client() -> AsyncIterator[ClientConnection]:
    async with connect(URL) as ws:
        yield ws


async def ask(ws: ClientConnection, command: dict[str, object]) -> dict[str, object] | str:
    await ws.send(json.dumps(command))
    text = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(text, str)
    try:
        reply: dict[str, object] = json.loads(text)
    except json.JSONDecodeError:
        return text
    return reply


def error_name(reply: object) -> object:
    assert isinstance(reply, dict)
    assert reply["event"] == "error"
    return reply["payload"]["name"]


async def test_app_serves_and_errors_on_every_message(tmp_path: Path) -> None:
    with running("docs/app.py", tmp_path):
        async with client() as ws:
            assert error_name(await ask(ws, {"event": "get all users"})) == "unknown_command"


async def test_say_ok(tmp_path: Path) -> None:
    with running("docs/say_ok.py", tmp_path):
        async with client() as ws:
            assert await ask(ws, {"event": "say ok"}) == "ok"


async def test_user_create(tmp_path: Path) -> None:
    with running("docs/user_create.py", tmp_path):
        async with client() as ws:
            payload = {"nickname": "athropyne", "password": "SecretpaSSword"}
            assert await ask(ws, {"event": "user create", "payload": payload}) == payload
            assert error_name(await ask(ws, {"event": "user create", "payload": {}})) == "validation_error"


async def test_send_message(tmp_path: Path) -> None:
    with running("docs/send_message.py", tmp_path):
        async with client() as alice:
            missing = {"to": "00000000-0000-0000-0000-000000000000", "text": "hi"}
            assert error_name(await ask(alice, {"event": "send message", "payload": missing})) == (
                "такой клиент не подключен"
            )


async def test_protected_session(tmp_path: Path) -> None:
    """The documentation's session: create, auth, then the protected list with the token."""
    with running("docs/protected.py", tmp_path):
        async with client() as ws:
            credentials = {"login": "athropyne", "password": "SecretpaSSword"}
            assert await ask(ws, {"event": "create", "payload": credentials}) == {
                "event": "user created",
                "payload": None,
            }
            token = await ask(ws, {"event": "auth", "payload": credentials})
            assert isinstance(token, dict)
            assert token["event"] == "new token"
            users = await ask(ws, {"event": "get list", "token": token["payload"]})
            assert isinstance(users, dict)
            assert users["event"] == "users list"
            assert [user["login"] for user in users["payload"]] == ["athropyne"]  # type: ignore[attr-defined]
            assert error_name(await ask(ws, {"event": "get list"})) == "unauthorized"


async def test_tutorial_two_clients_message_each_other(tmp_path: Path) -> None:
    """The tutorial's way to try a message: two clients, each welcomed with its id."""
    with running("tutorial/send_message.py", tmp_path):
        async with client() as alice, client() as bob:
            alice_id = json.loads(await asyncio.wait_for(alice.recv(), 5))["payload"]["client_id"]
            bob_id = json.loads(await asyncio.wait_for(bob.recv(), 5))["payload"]["client_id"]
            message = {"event": "send message", "payload": {"to": bob_id, "text": "hi bob"}}
            assert await ask(alice, message) == {"event": "message sent", "payload": None}
            incoming = json.loads(await asyncio.wait_for(bob.recv(), 5))
            assert incoming == {"event": "incoming message", "payload": {"author": alice_id, "text": "hi bob"}}


async def test_quickstart(tmp_path: Path) -> None:
    """The README's example answers a greeting."""
    with running("quickstart.py", tmp_path):
        async with client() as ws:
            reply = await ask(ws, {"event": "user hello", "payload": {"nickname": "alice"}})
            assert reply == {"event": "greeting", "payload": "hello, alice"}


def test_readme_example_is_the_quickstart_file() -> None:
    """The README shows examples/quickstart.py verbatim, so the tested program is the one users read."""
    readme = (EXAMPLES.parent / "README.md").read_text()
    assert (EXAMPLES / "quickstart.py").read_text() in readme


BAD_HANDLERS = {
    "no_parameters": ("async def create():", "handler create: takes no parameters"),
    "unannotated": ("async def create(socket):", "handler create: parameter 'socket' has no annotation"),
    "not_async": ("def create(socket: WebSocketServerProtocol):", "handler create: must be a coroutine function"),
    "model_first": (
        "async def create(model: Model, socket: WebSocketServerProtocol):",
        "handler create: parameter 'model': the first parameter must be the socket",
    ),
    "plain_second": (
        "async def create(socket: WebSocketServerProtocol, count: int):",
        "handler create: parameter 'count': int is neither the socket, a pydantic model",
    ),
    "three_plain": (
        "async def create(socket: WebSocketServerProtocol, model: Model, extra: str):",
        "handler create: parameter 'extra': str is neither",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_HANDLERS))
def test_bad_handler_stops_the_program_at_definition(case: str, tmp_path: Path) -> None:
    """`python main.py` with a malformed handler fails before serving, with a TypeError naming it."""
    signature, message = BAD_HANDLERS[case]
    program = f"""
import asyncio
from pydantic import BaseModel
from websockets import WebSocketServerProtocol
from websuckets import WebSuckets, CommandGroup

app = WebSuckets()
group = CommandGroup()

class Model(BaseModel):
    name: str

@group.command("create")
{signature}
    pass

app.include_command_group(group)
asyncio.run(app("localhost", 9000))
"""
    (tmp_path / "main.py").write_text(program)
    result = subprocess.run(
        [sys.executable, "main.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 1
    assert "serving on" not in result.stdout
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"websuckets.exc.InvalidHandler: {message}"), result.stderr
