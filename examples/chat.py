"""A small chat from the documentation's examples: sign up, log in, list users, send messages.

Run it with ``bash scripts/demo`` (or ``python examples/chat.py``), open http://localhost:9000/ in
a browser (the page in ``chat_web/``, served on the same port), or talk to it with
``python -m websockets ws://localhost:9000``::

    {"event": "user create", "payload": {"login": "alice", "password": "wonderland"}}
    {"event": "user auth", "payload": {"login": "alice", "password": "wonderland"}}
    {"event": "user list", "token": "<the token from the reply>"}
    {"event": "chat send", "payload": {"to": "<a login>", "text": "hi"}, "token": "<token>"}
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from dishka import FromDishka, Provider, Scope, make_async_container, provide
from pydantic import BaseModel, Field
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Context, WebSuckets
from websuckets.asyncapi import AsyncAPIPage
from websuckets.di import WebSucketsProvider
from websuckets.exc import InternalError
from websuckets.security import Token
from websuckets.session import Session

WEB = Path(__file__).resolve().parent / "chat_web"


class Credentials(BaseModel):
    login: str = Field(min_length=1, max_length=32)
    password: str = Field(min_length=4)


class Message(BaseModel):
    to: str
    text: str = Field(min_length=1, max_length=2000)


class Login(BaseModel):
    login: str


class NewToken(BaseModel):
    login: str
    token: str


class IncomingMessage(BaseModel):
    sender: str = Field(alias="from")
    text: str


class Accounts:
    """Registered users, login -> password. A real app would keep them in a database."""

    def __init__(self) -> None:
        self.passwords: dict[str, str] = {}


class ChatProvider(Provider):
    accounts = provide(Accounts, scope=Scope.APP)


users = CommandGroup("user")
chat = CommandGroup("chat")


@users.command("create", replies={"user created": Login})
async def create(socket: ServerConnection, model: Credentials, ctx: Context, accounts: FromDishka[Accounts]) -> None:
    """Sign up: a new login and its password."""
    if model.login in accounts.passwords:
        raise InternalError("login_taken", f"the login {model.login!r} is taken")
    accounts.passwords[model.login] = model.password
    await ctx.reply("user created", {"login": model.login})


@users.command("auth", replies={"new token": NewToken})
async def auth(socket: ServerConnection, model: Credentials, ctx: Context, accounts: FromDishka[Accounts]) -> None:
    """Log in: the reply carries the token that protected commands need."""
    expected = accounts.passwords.get(model.login)
    if expected is None or not Token.matches(expected, model.password):
        raise InternalError("bad_credentials", "unknown login or wrong password")
    ctx.user.id = model.login
    ctx.user.token = Token.generate()
    await ctx.reply("new token", {"login": model.login, "token": ctx.user.token})


@users.command("list", protected=True, replies={"users list": list[str]})
async def list_users(socket: ServerConnection, ctx: Context) -> None:
    """The logins of the users online."""
    await ctx.reply("users list", sorted(str(login) for login in Session.verified))


@chat.command("send", protected=True, replies={"message sent": None})
async def send(socket: ServerConnection, model: Message, ctx: Context) -> None:
    """Send a message to a user online; they get "incoming message"."""
    if model.to not in Session.verified:
        raise InternalError("not_online", f"{model.to!r} is not online")
    receiver = Session.verified[model.to]
    await receiver.socket.send(ClientEvent("incoming message", {"from": ctx.user.id, "text": model.text}))
    await ctx.reply("message sent")


def create_app() -> WebSuckets:
    container = make_async_container(ChatProvider(), WebSucketsProvider())
    app = WebSuckets(container=container)
    app.include_command_group(users)
    app.include_command_group(chat)
    app.add_static("/", WEB)  # the browser page at /, and the client at /websuckets.js
    app.server_event("incoming message", IncomingMessage)  # pushed to the receiver of "chat send"
    app.add_instrument(AsyncAPIPage(title="websuckets chat"))  # the schema at /asyncapi and /asyncapi.json
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = os.environ.get("WEBSUCKETS_HOST", "localhost")
    port = int(os.environ.get("WEBSUCKETS_PORT", "9000"))
    asyncio.run(create_app()(host, port))
