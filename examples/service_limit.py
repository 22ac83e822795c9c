"""A rate limit that trusts your own services: the default for everyone, a far bigger one for them.

Browsers and strangers get the default limit (100 commands/s, bursts of 200, then 1008). The
connections signed in as one of ``SERVICES`` (bots, other services, load generators of your
own) get 10,000/s. The subclass takes the built-in limit's place in every command's chain,
before authentication, so that it still bounds token guessing.
"""

import asyncio

from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import CallNext, CommandGroup, Context, InternalError, Token, WebSuckets
from websuckets.middleware import RateLimit

SERVICES = frozenset({"billing", "indexer"})
"""The user ids of your own services; how they sign in is yours (a login command here)."""

SERVICE_LIMIT = RateLimit(rate=10_000, burst=20_000)


class ServiceAwareLimit(RateLimit):
    """The limit of ``RateLimit(...)`` for everyone, `SERVICE_LIMIT` for verified services."""

    async def __call__(self, ctx: Context, call_next: CallNext) -> None:
        if ctx.user.verified and ctx.user.id in SERVICES:
            await SERVICE_LIMIT(ctx, call_next)
        else:
            await super().__call__(ctx, call_next)


app = WebSuckets(rate_limit=ServiceAwareLimit())  # the default's figures: rate=100, burst=200
group = CommandGroup("service")


class Login(BaseModel):
    name: str
    secret: str


@group.command("login")
async def login(socket: ServerConnection, model: Login, ctx: Context) -> None:
    if model.name not in SERVICES or model.secret != "s3cret":  # check a real secret in your app
        raise InternalError("unknown_service")
    ctx.user.id, ctx.user.token = model.name, Token.generate()
    await ctx.reply("new token", ctx.user.token)


@group.command("ping")
async def ping(socket: ServerConnection, ctx: Context) -> None:
    await ctx.reply("pong")


app.include_command_group(group)

if __name__ == "__main__":
    asyncio.run(app("localhost", 9000))
