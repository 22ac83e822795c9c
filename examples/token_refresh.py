"""Tokens that expire, refreshed before they do; a returning client verified at the handshake.

Run it with ``python examples/token_refresh.py`` and talk to it with ``python -m websockets ws://localhost:9000``::

    {"event": "auth login", "payload": {"login": "alice", "password": "wonderland"}, "id": 1}
    {"event": "auth refresh", "id": 2}
    {"event": "notes count", "id": 3}

Each token lasts ``TOKEN_TTL`` seconds. The client calls ``auth refresh`` before then (the
replies say ``expires_in``): it gets a new token for the same user, and the old one stops
working. A client that lets its token expire gets ``unauthorized`` with the details
``"the token has expired"`` and logs in again. A client that reconnects presents its token at
the handshake (``Authorization: Bearer <token>``, or the subprotocol ``websuckets.token.<token>``
from a browser), so its commands need no ``token`` field.
"""

import asyncio

from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, Context, User, WebSuckets
from websuckets.exc import InternalError
from websuckets.handshake_auth import HandshakeAuth
from websuckets.security import Token

TOKEN_TTL = 15 * 60
"""Seconds a token lasts: short, because refreshing is cheap."""

PASSWORDS = {"alice": "wonderland", "bob": "builder"}  # a real app checks hashes in a database


class Credentials(BaseModel):
    login: str
    password: str


app = WebSuckets(token_ttl=TOKEN_TTL, handshake_auth=HandshakeAuth(required=False))
auth = CommandGroup("auth")
notes = CommandGroup("notes")


async def issue(user: User, ctx: Context) -> None:
    """Give the user a new token; one it had is revoked. "new token" is what websuckets.js keeps."""
    user.token = Token.generate()
    await ctx.reply("new token", {"token": user.token, "expires_in": app.token_ttl})


@auth.command("login")
async def login(socket: ServerConnection, model: Credentials, user: User, ctx: Context) -> None:
    if PASSWORDS.get(model.login) != model.password:
        raise InternalError("bad_credentials", "wrong login or password")
    user.id = model.login
    await issue(user, ctx)


@auth.command("refresh", protected=True)
async def refresh(socket: ServerConnection, user: User, ctx: Context) -> None:
    """Protected: only a token that is still valid can be exchanged for a new one."""
    await issue(user, ctx)


@notes.command("count", protected=True)
async def count(socket: ServerConnection, user: User, ctx: Context) -> None:
    await ctx.reply("notes", {"user": user.id, "count": 0})


app.include_command_group(auth)
app.include_command_group(notes)

if __name__ == "__main__":
    asyncio.run(app("localhost", 9000))
