"""The browser client, websuckets.js, run by node's test runner against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from uuid import UUID

import pytest
from examples_loader import load_example
from pydantic import BaseModel
from test_client import auto_joining_app
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Context, History, Session, WebSuckets
from websuckets.backends.memory import MemoryBackend
from websuckets.exc import InternalError
from websuckets.handshake_auth import HandshakeAuth
from websuckets.history import gap_event
from websuckets.security import Token

JS_TESTS = Path(__file__).resolve().parent / "js"
NODE_TIMEOUT = 45


class Login(BaseModel):
    login: str


class Room(BaseModel):
    room: str


class Say(BaseModel):
    room: str
    text: str
    exclude: str | None = None


def make_app(handshake_auth: HandshakeAuth | None = None) -> WebSuckets:
    """Commands for the client to exercise: replies, errors, pushes, a protected one, a dropped connection.

    Rooms named ``history:...`` keep their last 5 messages, for resuming.
    """
    app = WebSuckets(welcome=True, handshake_auth=handshake_auth, history={"history:*": History(size=5)})
    group = CommandGroup()

    @group.command("who")
    async def who(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("user", {"id": ctx.user.id, "subprotocol": socket.subprotocol})

    @group.command("my id")
    async def my_id(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("your id", str(socket.id))

    @group.command("echo")
    async def echo(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("echo", ctx.payload)

    @group.command("fail")
    async def fail(socket: ServerConnection, ctx: Context) -> None:
        raise InternalError("nope", ctx.payload)

    @group.command("push")
    async def push(socket: ServerConnection, ctx: Context) -> None:
        await socket.send(ClientEvent("pushed", ctx.payload))  # no id: not an answer to a request

    @group.command("slow")
    async def slow(socket: ServerConnection, ctx: Context) -> None:
        await asyncio.sleep(ctx.payload / 1000)
        await ctx.reply("slow", ctx.payload)

    @group.command("login")
    async def login(socket: ServerConnection, model: Login, ctx: Context) -> None:
        ctx.user.id = model.login
        ctx.user.token = Token.generate()
        await ctx.reply("new token", {"login": model.login, "token": ctx.user.token})

    @group.command("whoami", protected=True)
    async def whoami(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("you are", ctx.user.id)

    @group.command("drop")
    async def drop(socket: ServerConnection, ctx: Context) -> None:
        await socket.close(1012, "dropped for a test")

    @group.command("join")
    async def join(socket: ServerConnection, model: Room, ctx: Context) -> None:
        await Session.join(socket.id, model.room)
        await ctx.reply("joined", model.room)

    @group.command("say")
    async def say(socket: ServerConnection, model: Say, ctx: Context) -> None:
        exclude = None if model.exclude is None else UUID(model.exclude)
        position = await Session.broadcast(ClientEvent("said", model.text), room=model.room, exclude=exclude)
        await ctx.reply("sent", None if position is None else position.offset)

    @group.command("gap")
    async def gap(socket: ServerConnection, model: Room, ctx: Context) -> None:
        await socket.send(gap_event(model.room))  # as a backend does when it lost messages of the room

    app.include_command_group(group)
    return app


def node_command() -> list[str]:
    """node, with the flag Node 20 needs for a global WebSocket (later versions have it built in)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (20 or later) is needed to test websuckets.js: install Node.js")
    probe = subprocess.run([node, "-p", "typeof WebSocket"], capture_output=True, text=True, timeout=30, check=True)
    flags = [] if probe.stdout.strip() == "function" else ["--experimental-websocket"]
    return [node, *flags, "--test", *map(str, sorted(JS_TESTS.glob("*.test.mjs")))]


async def test_js_client_against_a_real_server() -> None:
    """tests/js/*.test.mjs pass: request/reply, errors, on(), the token, reconnection, resuming history rooms.

    A third server joins every client to its room ``lobby`` when it connects (``auto_joining_app``);
    a fourth is the README's first example (``examples/quickstart.py``).
    """
    command = node_command()
    app, authenticating, lobby = make_app(), make_app(HandshakeAuth(required=False)), auto_joining_app(MemoryBackend())
    readme = load_example("quickstart.py").app
    async with contextlib.AsyncExitStack() as stack:
        urls = {}
        apps = {
            "WEBSUCKETS_URL": app,
            "WEBSUCKETS_AUTH_URL": authenticating,
            "WEBSUCKETS_LOBBY_URL": lobby,
            "WEBSUCKETS_README_URL": readme,
        }
        for name, served in apps.items():
            await stack.enter_async_context(served)
            server = await stack.enter_async_context(served.serve("127.0.0.1", 0))
            urls[name] = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        process = await asyncio.create_subprocess_exec(
            *command,
            env={**os.environ, **urls, "NO_COLOR": "1"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), NODE_TIMEOUT)
        except TimeoutError:
            process.kill()
            output, _ = await process.communicate()
            pytest.fail(f"node did not finish in {NODE_TIMEOUT} s:\n{output.decode()}")
    assert process.returncode == 0, output.decode()
