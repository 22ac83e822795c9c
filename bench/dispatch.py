"""The per-message cost of websuckets' data path, against a hand-rolled dispatcher, in one run.

No network: both sides get the same JSON frame and send their reply to a socket that drops
it, so the figures are the framework's own work (parse, route, chain, validate, handler,
serialise). Run with ``python bench/dispatch.py [--messages N] [--repeat R]``; it prints
microseconds per message for each, the median of R runs, and the ratio. The websuckets app
runs without its rate limit (the hand-rolled one has none); a third row gives the cost of the
default chain with a rate limit that never refuses.

Two more rows answer with ``socket.send(ClientEvent(...))``, the README's style: a command
without an ``id`` (which must cost what it did before commands' ids were stamped on such
answers), and one with an ``id``, whose first event gets it (see ``websuckets.answer``).
``--quick`` runs 20,000 messages once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from dishka import AsyncContainer
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Context, User, WebSuckets
from websuckets.middleware import RateLimit

sys.path.insert(0, str(Path(__file__).resolve().parent / "servers"))  # the DI server's app and services
from services import Trace, Visitor
from websuckets_app import create_app

FRAME = json.dumps({"event": "user echo", "payload": {"nickname": "alice", "text": "hello", "n": 1}, "id": 1})
SEND_PAYLOAD = {"nickname": "alice", "text": "hello", "n": 1}
SEND_NO_ID = json.dumps({"event": "user send", "payload": SEND_PAYLOAD})
SEND_WITH_ID = json.dumps({"event": "user send", "payload": SEND_PAYLOAD, "id": 1})


class Echo(BaseModel):
    nickname: str
    text: str
    n: int


class NullSocket:
    """Takes replies and drops them."""

    def __init__(self) -> None:
        self.id = uuid.uuid4()

    async def send(self, message: str) -> None:
        pass


def websuckets_dispatch(
    app: WebSuckets, socket: NullSocket, session: AsyncContainer | None = None, user: User | None = None
) -> Callable[[str], Awaitable[None]]:
    """``app``'s dispatch of one connection's frames; in a DI app, ``session`` is its SESSION scope, for ``user``."""
    dispatcher = app.dispatcher
    if user is None:
        user = dispatcher.sessions.connect(socket)  # type: ignore[arg-type]
    connection = dispatcher.connection(socket, user, session)  # type: ignore[arg-type]
    return lambda frame: dispatcher.dispatch(connection, frame)


def hand_rolled_dispatch(socket: NullSocket) -> Callable[[str], Awaitable[None]]:
    """What a careful user writes: json, a dict of handlers, pydantic."""

    async def echo(data: dict[str, object]) -> None:
        model = Echo.model_validate(data["payload"])
        await socket.send(json.dumps({"event": "echo", "payload": model.model_dump(), "id": data.get("id")}))

    handlers = {"user echo": echo}

    async def dispatch(frame: str) -> None:
        data = json.loads(frame)
        await handlers[data["event"]](data)

    return dispatch


def hand_rolled_dishka_dispatch(socket: NullSocket, session: AsyncContainer) -> Callable[[str], Awaitable[None]]:
    """The hand-rolled dispatcher plus dishka, as ``bench/servers/handrolled_dishka.py``: a REQUEST scope
    of the connection's ``session`` a message, one SESSION- and one REQUEST-scoped service."""

    async def echo(data: dict[str, object], visitor: Visitor, trace: Trace) -> None:
        model = Echo.model_validate(data["payload"])
        visitor.messages += 1
        trace.n = model.n
        await socket.send(json.dumps({"event": "echo", "payload": model.model_dump(), "id": data.get("id")}))

    handlers = {"user echo": echo}

    async def dispatch(frame: str) -> None:
        data = json.loads(frame)
        async with session() as request:
            await handlers[data["event"]](data, await request.get(Visitor), await request.get(Trace))

    return dispatch


async def per_message(dispatch: Callable[[str], Awaitable[None]], messages: int, frame: str = FRAME) -> float:
    for _ in range(messages // 10):  # warm-up
        await dispatch(frame)
    started = time.perf_counter()
    for _ in range(messages):
        await dispatch(frame)
    return (time.perf_counter() - started) / messages * 1e6


def make_app(rate_limit: RateLimit | None) -> WebSuckets:
    app = WebSuckets(rate_limit=rate_limit)
    group = CommandGroup("user")

    @group.command("echo")
    async def echo(socket: ServerConnection, model: Echo, ctx: Context) -> None:
        await ctx.reply("echo", model)

    @group.command("send")
    async def send(socket: ServerConnection, model: Echo) -> None:
        await socket.send(ClientEvent("echo", model))

    app.include_command_group(group)
    return app


def make_di_app() -> WebSuckets:
    """The app of ``bench/servers/websuckets_app.py --variant di`` (``bench/run.py``'s ``websuckets_di``):
    ``user echo`` with one SESSION- and one REQUEST-scoped service, no rate limit."""
    return create_app("di")


async def main(messages: int, repeat: int) -> None:
    app, limited = make_app(None), make_app(RateLimit(rate=1e12, burst=1e12))
    async with app, limited:
        socket = NullSocket()
        ours, theirs = websuckets_dispatch(app, socket), hand_rolled_dispatch(socket)
        with_limit = websuckets_dispatch(limited, socket)
        ours_us = statistics.median([await per_message(ours, messages) for _ in range(repeat)])
        theirs_us = statistics.median([await per_message(theirs, messages) for _ in range(repeat)])
        limited_us = statistics.median([await per_message(with_limit, messages) for _ in range(repeat)])
        no_id_us = statistics.median([await per_message(ours, messages, SEND_NO_ID) for _ in range(repeat)])
        with_id_us = statistics.median([await per_message(ours, messages, SEND_WITH_ID) for _ in range(repeat)])
    print(f"messages per run: {messages}, runs: {repeat} (median)")
    print("| server      | µs/message | messages/s |")
    print("|-------------|-----------:|-----------:|")
    print(f"| websuckets  | {ours_us:10.2f} | {1e6 / ours_us:10.0f} |")
    print(f"| hand-rolled | {theirs_us:10.2f} | {1e6 / theirs_us:10.0f} |")
    print(f"| websuckets with rate limit | {limited_us:10.2f} | {1e6 / limited_us:10.0f} |")
    print(f"| websuckets, socket.send, no id | {no_id_us:10.2f} | {1e6 / no_id_us:10.0f} |")
    print(f"| websuckets, socket.send, with id | {with_id_us:10.2f} | {1e6 / with_id_us:10.0f} |")
    print(f"ratio websuckets / hand-rolled: {ours_us / theirs_us:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 messages, one run")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.messages, arguments.repeat = 20_000, 1
    asyncio.run(main(arguments.messages, arguments.repeat))
