"""websuckets serving the benchmark's commands, in the variants chosen with ``--variant``.

- ``defaults``: every default of `WebSuckets` kept (the rate limit, the origin check, keepalive
  pings), but for ``--max-connections``: what ``bench/idle.py`` holds open;
- ``plain``: the documented ``(socket, model)`` handler, no container (the client sends each
  request's id as the payload's ``n`` too, so the handler tags its reply with ``model.n``);
- ``container``: the same handlers in an app that has a dishka container (DI unused);
- ``di``: ``user echo`` also takes one REQUEST- and one SESSION-scoped service;
- ``limited``: ``plain`` with a `websuckets.middleware.RateLimit` that never refuses: the default
  chain's rate-limit step, with traffic under the limit;
- ``metrics``: ``plain`` with `websuckets.metrics.Metrics` on (``/metrics`` served, never scraped);
- ``tracing``: ``plain`` with `websuckets.tracing.Tracing` on and no SDK: OpenTelemetry's API alone,
  as an app that turns tracing on without exporting anything pays it.

``chat say`` sends ``chat`` to every other connection, iterating ``Session.online``.
"""

import argparse
import asyncio

from dishka import FromDishka, make_async_container
from pydantic import BaseModel
from services import BenchProvider, Trace, Visitor
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Session, WebSuckets
from websuckets.backends.base import Backend
from websuckets.di import WebSucketsProvider
from websuckets.middleware import RateLimit


class Echo(BaseModel):
    nickname: str
    text: str
    n: int


user = CommandGroup("user")
chat = CommandGroup("chat")


async def echo(socket: ServerConnection, model: Echo) -> None:
    await socket.send(ClientEvent("echo", model, id=model.n))


async def echo_di(
    socket: ServerConnection, model: Echo, visitor: FromDishka[Visitor], trace: FromDishka[Trace]
) -> None:
    visitor.messages += 1
    trace.n = model.n
    await socket.send(ClientEvent("echo", model, id=model.n))


@chat.command("say")
async def say(socket: ServerConnection, model: Echo) -> None:
    event = ClientEvent("chat", model)
    for other in Session.online.values():
        if other.socket is not socket:
            await other.socket.send(event)


def create_app(variant: str, backend: Backend | None = None, max_connections: int | None = None) -> WebSuckets:
    user.command("echo")(echo_di if variant == "di" else echo)
    if variant == "defaults":
        app = WebSuckets(backend=backend, max_connections=max_connections)
        app.include_command_group(user)
        app.include_command_group(chat)
        return app
    container = make_async_container(BenchProvider(), WebSucketsProvider()) if variant in ("di", "container") else None
    rate_limit = RateLimit(rate=1e12, burst=1e12) if variant == "limited" else None  # the others limit nothing
    app = WebSuckets(container=container, backend=backend, rate_limit=rate_limit)
    app.include_command_group(user)
    app.include_command_group(chat)
    if variant == "metrics":
        from websuckets.metrics import Metrics

        app.add_instrument(Metrics())
    elif variant == "tracing":
        from websuckets.tracing import Tracing

        app.add_instrument(Tracing())
    return app


async def main(port: int, variant: str, max_connections: int | None) -> None:
    app = create_app(variant, max_connections=max_connections)
    async with app, app.serve("127.0.0.1", port) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--variant",
        choices=["defaults", "plain", "limited", "di", "container", "metrics", "tracing"],
        default="plain",
    )
    parser.add_argument(
        "--max-connections", type=int, default=10_000, help="defaults: WebSuckets(max_connections=...); 0 for no cap"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.port, arguments.variant, arguments.max_connections or None))
