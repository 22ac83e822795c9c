"""MessagePack against JSON, in one run: replies a second and bytes on the wire, for commands and a room fan-out.

Loopback only. One websuckets server runs in a process of its own; its clients choose their
format at the handshake (no subprotocol: JSON text; ``websuckets.v1.msgpack``: MessagePack), so
both formats meet the same server in the same run, alternately:

- ``command``: ``--clients`` clients at once, each sending ``bench echo`` with
  ``{"nickname": "alice", "text": "hello", "n": i}`` and an ``id`` and waiting for its reply
  (``ctx.reply``, the payload model sent back), ``--messages`` times; replies/s over all clients;
- ``fan-out``: ``--clients`` members of one room; one more client sends ``bench say``
  ``--broadcasts`` times, each a ``Session.broadcast`` of ``{"room", "text", "n"}`` to the room
  (one encoding a format, see ``websuckets.delivery``); deliveries/s read by all members.

Bytes are the frames' payloads as sent and received (no WebSocket or TCP headers), per
command and reply, and per delivered message. The clients live in this process and encode with
the same codecs as the server (pydantic-core's JSON, ormsgpack), so their work weighs on both
formats alike.

``--codecs`` prints, first, the codecs' own cost on these messages (ns a call): pydantic-core's
JSON (the server's), orjson, msgpack and ormsgpack, each when installed.

    python bench/formats.py [--clients 64] [--messages 500] [--broadcasts 500] [--repeat 3] [--codecs] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import multiprocessing
import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any

import ormsgpack
from pydantic import BaseModel
from pydantic_core import from_json, to_json
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.typing import Subprotocol

from websuckets import ClientEvent, CommandGroup, Context, Session, WebSuckets
from websuckets.wire import MSGPACK_SUBPROTOCOL

PAYLOAD = {"nickname": "alice", "text": "hello", "n": 1}
ROOM = "bench"


class Echo(BaseModel):
    nickname: str
    text: str
    n: int


class Say(BaseModel):
    text: str
    n: int


def make_app() -> WebSuckets:
    app = WebSuckets(rate_limit=None)
    group = CommandGroup("bench")

    @group.command("echo")
    async def echo(socket: ServerConnection, model: Echo, ctx: Context) -> None:
        await ctx.reply("bench echoed", model)

    @group.command("join")
    async def join(socket: ServerConnection, ctx: Context) -> None:
        await Session.join(socket.id, ROOM)
        await ctx.reply("bench joined", ROOM)

    @group.command("say")
    async def say(socket: ServerConnection, model: Say) -> None:
        await Session.broadcast(ClientEvent("bench said", {"room": ROOM, "text": model.text, "n": model.n}), room=ROOM)

    app.include_command_group(group)
    return app


def serve(ports: Any, ready: Any) -> None:
    """The server process, until killed."""

    async def run() -> None:
        app = make_app()
        async with app, app.serve("127.0.0.1", 0, max_queue=None) as server:
            ports.append(server.sockets[0].getsockname()[1])
            ready.set()
            await asyncio.Future()

    asyncio.run(run())


class Format:
    """One wire format as a client speaks it: what it offers, how it encodes and decodes."""

    def __init__(
        self, name: str, offer: list[Subprotocol] | None, dump: Callable[[Any], Any], load: Callable[[Any], Any]
    ):
        self.name, self.offer, self.dump, self.load = name, offer, dump, load


JSON = Format("JSON", None, lambda value: to_json(value).decode(), from_json)
MSGPACK = Format("MessagePack", [Subprotocol(MSGPACK_SUBPROTOCOL)], ormsgpack.packb, ormsgpack.unpackb)


async def open_clients(url: str, form: Format, count: int) -> list[ClientConnection]:
    sockets = [await connect(url, subprotocols=form.offer, max_size=None, max_queue=None) for _ in range(count)]
    assert all(socket.subprotocol == (form.offer[0] if form.offer else None) for socket in sockets)
    return sockets


async def commands(url: str, form: Format, clients: int, messages: int) -> tuple[float, float]:
    """Replies a second over every client, and bytes on the wire a command and its reply."""
    sockets = await open_clients(url, form, clients)
    wire = [0]

    async def run(socket: ClientConnection, count: int) -> None:
        for n in range(count):
            frame = form.dump({"event": "bench echo", "payload": {**PAYLOAD, "n": n}, "id": n})
            await socket.send(frame)
            reply = await socket.recv()
            wire[0] += len(frame) + len(reply)
            assert form.load(reply)["id"] == n

    try:
        await asyncio.gather(*(run(socket, 20) for socket in sockets))  # warm-up
        wire[0] = 0
        started = time.perf_counter()
        await asyncio.gather(*(run(socket, messages) for socket in sockets))
        elapsed = time.perf_counter() - started
    finally:
        for socket in sockets:
            await socket.close()
    return clients * messages / elapsed, wire[0] / (clients * messages)


async def fan_out(url: str, form: Format, clients: int, broadcasts: int) -> tuple[float, float]:
    """Deliveries a second read by every member, and bytes on the wire a delivered message."""
    members = await open_clients(url, form, clients)
    for member in members:
        await member.send(form.dump({"event": "bench join", "id": 1}))
        await member.recv()
    sender = (await open_clients(url, form, 1))[0]
    wire = [0]

    async def read(member: ClientConnection, count: int) -> None:
        for _ in range(count):
            frame = await member.recv()
            wire[0] += len(frame)  # not `+= len(await ...)`: that reads the total before waiting

    async def send(count: int) -> None:
        for n in range(count):
            await sender.send(form.dump({"event": "bench say", "payload": {"text": "x" * 64, "n": n}}))

    try:
        await asyncio.gather(send(20), *(read(member, 20) for member in members))  # warm-up
        wire[0] = 0
        started = time.perf_counter()
        await asyncio.gather(send(broadcasts), *(read(member, broadcasts) for member in members))
        elapsed = time.perf_counter() - started
    finally:
        for socket in [*members, sender]:
            await socket.close()
    return clients * broadcasts / elapsed, wire[0] / (clients * broadcasts)


def codec_costs() -> None:
    """ns a call of each codec on a command (decode) and on an event holding a pydantic model (encode)."""
    command = to_json({"event": "bench echo", "payload": PAYLOAD, "id": 42})
    event = {"event": "bench echoed", "payload": Echo(**PAYLOAD), "id": 42}
    plain = {"event": "bench echoed", "payload": PAYLOAD, "id": 42}
    packed = ormsgpack.packb(from_json(command))
    rows: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("pydantic-core JSON (the server's)", lambda: from_json(command), lambda: to_json(event)),
    ]
    try:
        orjson = importlib.import_module("orjson")
        rows.append(("orjson", lambda: orjson.loads(command), lambda: orjson.dumps(plain)))
    except ImportError:
        pass
    try:
        msgpack = importlib.import_module("msgpack")
        rows.append(
            ("msgpack (default= hook)", lambda: msgpack.unpackb(packed), lambda: msgpack.packb(event, default=_dump))
        )
    except ImportError:
        pass
    rows.append(
        (
            "ormsgpack (pydantic natively)",
            lambda: ormsgpack.unpackb(packed),
            lambda: ormsgpack.packb(event, option=ormsgpack.OPT_SERIALIZE_PYDANTIC),
        )
    )
    print("| codec | decode a command (ns) | encode an event with a model (ns) |")
    print("|-------|----------------------:|----------------------------------:|")
    for name, decode, encode in rows:
        print(f"| {name} | {_ns(decode):21.0f} | {_ns(encode):33.0f} |")
    print("(orjson encodes the payload as a dict: it has no pydantic support)")


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    raise TypeError(type(value).__name__)


def _ns(call: Callable[[], Any], number: int = 50_000) -> float:
    return min(timeit.repeat(call, number=number, repeat=3)) / number * 1e9


async def main(clients: int, messages: int, broadcasts: int, repeat: int) -> None:
    context = multiprocessing.get_context("spawn")
    ports, ready = context.Manager().list(), context.Event()
    server = context.Process(target=serve, args=(ports, ready), daemon=True)
    server.start()
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        if not ready.wait(30):
            raise RuntimeError("the server process did not start")
        url = f"ws://127.0.0.1:{ports[0]}/"
        for _ in range(repeat):
            for form in (JSON, MSGPACK):  # alternately: a noisy moment weighs on both
                results.setdefault(("command", form.name), []).append(await commands(url, form, clients, messages))
                results.setdefault(("fan-out", form.name), []).append(await fan_out(url, form, clients, broadcasts))
    finally:
        server.kill()
        server.join()
    print(f"clients: {clients}; commands: {messages} each; broadcasts: {broadcasts}; runs: {repeat} (median)")
    print("| workload | format | replies/s | bytes/message |")
    print("|----------|--------|----------:|--------------:|")
    medians = {}
    for (workload, name), runs in results.items():
        rate, size = statistics.median(r for r, _ in runs), statistics.median(s for _, s in runs)
        medians[workload, name] = rate, size
        print(f"| {workload} | {name} | {rate:9.0f} | {size:13.1f} |")
    for workload in ("command", "fan-out"):
        (json_rate, json_size), (mp_rate, mp_size) = medians[workload, "JSON"], medians[workload, "MessagePack"]
        print(
            f"ratio MessagePack / JSON, {workload} at C={clients}: "
            f"replies/s {mp_rate / json_rate:.2f}, bytes {mp_size / json_size:.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--messages", type=int, default=500, help="commands each client sends")
    parser.add_argument("--broadcasts", type=int, default=500, help="messages sent to the room")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--codecs", action="store_true", help="first, the codecs' own cost on these messages")
    parser.add_argument("--quick", action="store_true", help="100 commands each, 100 broadcasts, one run")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.messages, arguments.broadcasts, arguments.repeat = 100, 100, 1
    if arguments.codecs:
        codec_costs()
    asyncio.run(main(arguments.clients, arguments.messages, arguments.broadcasts, arguments.repeat))
