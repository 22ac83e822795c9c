"""Instructions a message on the data path, counted by valgrind's callgrind: a figure the machine's noise does not move.

The same path as ``bench/dispatch.py`` (no network; replies go to a socket that drops them):
websuckets answering with ``ctx.reply``, with ``socket.send(ClientEvent(...))``, with the default
chain's rate limit (never reached), and the hand-rolled dispatcher; then the DI handler (a SESSION-
and a REQUEST-scoped service, as ``bench/run.py``'s ``websuckets_di``) against the hand-rolled
dispatcher plus dishka, both in one connection's SESSION scope. Each figure is the count of a
run of ``--messages`` messages less that of a run of ``--messages // 6`` (start-up and imports
cancel out), divided by the difference. Needs ``valgrind`` (Debian's package); about a minute a
row. ``python bench/instructions.py [--messages N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable

import dispatch  # bench/dispatch.py: python puts this script's directory first on the path
from dishka import Scope
from websockets.asyncio.server import ServerConnection

from websuckets import User
from websuckets.middleware import RateLimit

ROWS = {
    "websuckets, ctx.reply": "reply",
    "websuckets, socket.send(ClientEvent)": "send",
    "websuckets + rate limit (never reached)": "limited",
    "hand-rolled": "hand-rolled",
    "websuckets DI (a SESSION and a REQUEST service)": "di",
    "hand-rolled + dishka": "hand-rolled-dishka",
}
REFERENCE = {"di": "hand-rolled-dishka"}
"""The reference of each row that is not compared with the hand-rolled dispatcher."""


async def run(row: str, messages: int) -> None:
    """``messages`` messages through ``row``'s dispatcher (in the process valgrind counts)."""
    socket = dispatch.NullSocket()
    if row == "hand-rolled":
        await repeat(dispatch.hand_rolled_dispatch(socket), dispatch.FRAME, messages)
        return
    if row in ("di", "hand-rolled-dishka"):
        await run_with_dishka(row, socket, messages)
        return
    app = dispatch.make_app(RateLimit(rate=1e12, burst=1e12) if row == "limited" else None)
    frame = dispatch.SEND_NO_ID if row == "send" else dispatch.FRAME
    async with app:
        await repeat(dispatch.websuckets_dispatch(app, socket), frame, messages)


async def run_with_dishka(row: str, socket: dispatch.NullSocket, messages: int) -> None:
    """``messages`` messages of one connection, in the SESSION scope of the DI app's container."""
    app = dispatch.make_di_app()
    assert app.container is not None
    async with app:
        user = app.dispatcher.sessions.connect(socket)  # type: ignore[arg-type]
        context = {ServerConnection: socket, User: user}
        async with app.container(context=context, scope=Scope.SESSION) as session:
            if row == "di":
                handle = dispatch.websuckets_dispatch(app, socket, session, user)
            else:
                handle = dispatch.hand_rolled_dishka_dispatch(socket, session)
            await repeat(handle, dispatch.FRAME, messages)


async def repeat(handle: Callable[[str], Awaitable[None]], frame: str, messages: int) -> None:
    for _ in range(messages):
        await handle(frame)


def counted(row: str, messages: int) -> int:
    """The instructions valgrind counts for a whole run of ``messages`` messages through ``row``."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--run", row, "--messages", str(messages)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    found = re.search(r"Collected : (\d+)", output)
    if found is None:
        raise RuntimeError(f"valgrind printed no count:\n{output[-2000:]}")
    return int(found.group(1))


def main(messages: int) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    few = messages // 6
    print(f"instructions a message: a run of {messages} messages less a run of {few}")
    print("| path | instructions a message | x its reference (hand-rolled; hand-rolled + dishka for DI) |")
    print("|---|---:|---:|")
    figures = {name: (counted(row, messages) - counted(row, few)) / (messages - few) for name, row in ROWS.items()}
    by_row = {row: figures[name] for name, row in ROWS.items()}
    for name, row in ROWS.items():
        reference = REFERENCE.get(row, "hand-rolled")
        ratio = f"{figures[name] / by_row[reference]:.2f}x" if row != reference else ""
        print(f"| {name} | {figures[name]:,.0f} | {ratio} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--run", choices=sorted(ROWS.values()), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.run:
        asyncio.run(run(arguments.run, arguments.messages))
    else:
        main(arguments.messages)
