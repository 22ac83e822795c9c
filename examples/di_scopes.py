"""Services injected by dishka, in the three scopes websuckets opens."""

import asyncio
import logging
from collections.abc import AsyncIterator

from dishka import FromDishka, Provider, Scope, make_async_container, provide
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, Context, WebSuckets
from websuckets.di import WebSucketsProvider

log = logging.getLogger("di_scopes")


class Clock:
    """APP scope: one for the whole app."""

    def now(self) -> str:
        import datetime

        return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class Basket:
    """SESSION scope: one per connection, so every client has its own basket."""

    def __init__(self) -> None:
        self.items: list[str] = []


class Audit:
    """REQUEST scope: one per command, flushed when the command is done."""

    def __init__(self, event: str) -> None:
        self.event = event
        self.notes: list[str] = []


class ShopProvider(Provider):
    clock = provide(Clock, scope=Scope.APP)

    @provide(scope=Scope.SESSION)
    async def basket(self) -> AsyncIterator[Basket]:
        basket = Basket()
        yield basket
        log.info("client left with %d items in the basket", len(basket.items))

    @provide(scope=Scope.REQUEST)
    async def audit(self, ctx: Context) -> AsyncIterator[Audit]:
        audit = Audit(ctx.event)
        yield audit
        log.info("audit of %r: %s", audit.event, audit.notes)  # runs after every command


class Item(BaseModel):
    name: str


shop = CommandGroup("basket")


@shop.command("add")
async def add(
    socket: ServerConnection,
    model: Item,
    ctx: Context,
    basket: FromDishka[Basket],
    audit: FromDishka[Audit],
    clock: FromDishka[Clock],
) -> None:
    now = clock.now()
    basket.items.append(model.name)
    audit.notes.append(f"added {model.name} at {now}")
    await ctx.reply("basket", {"items": basket.items, "at": now})


def create_app(*providers: Provider) -> WebSuckets:
    """The app; tests pass fake providers, which override the real ones."""
    container = make_async_container(ShopProvider(), WebSucketsProvider(), *providers)
    app = WebSuckets(container=container)
    app.include_command_group(shop)
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(create_app()("localhost", 9000))
