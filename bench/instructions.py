"""Instructions a message on the data path, counted by valgrind's callgrind: a figure the machine's noise does not move.

The same path as ``bench/dispatch.py`` (no network; replies go to a socket that drops them):
websuckets answering with ``ctx.reply``, with ``socket.send(ClientEvent(...))``, with the default
chain's rate limit (never reached), and the hand-rolled dispatcher. Each figure is the count of a
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

import dispatch  # bench/dispatch.py: python puts this script's directory first on the path

from websuckets.middleware import RateLimit

ROWS = {
    "websuckets, ctx.reply": "reply",
    "websuckets, socket.send(ClientEvent)": "send",
    "websuckets + rate limit (never reached)": "limited",
    "hand-rolled": "hand-rolled",
}


async def run(row: str, messages: int) -> None:
    """``messages`` messages through ``row``'s dispatcher (in the process valgrind counts)."""
    socket = dispatch.NullSocket()
    if row == "hand-rolled":
        handle = dispatch.hand_rolled_dispatch(socket)
        for _ in range(messages):
            await handle(dispatch.FRAME)
        return
    app = dispatch.make_app(RateLimit(rate=1e12, burst=1e12) if row == "limited" else None)
    frame = dispatch.SEND_NO_ID if row == "send" else dispatch.FRAME
    async with app:
        handle = dispatch.websuckets_dispatch(app, socket)
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
    print("| path | instructions a message | x hand-rolled |")
    print("|---|---:|---:|")
    figures = {name: (counted(row, messages) - counted(row, few)) / (messages - few) for name, row in ROWS.items()}
    for name, figure in figures.items():
        print(f"| {name} | {figure:,.0f} | {figure / figures['hand-rolled']:.2f}x |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--run", choices=sorted(ROWS.values()), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.run:
        asyncio.run(run(arguments.run, arguments.messages))
    else:
        main(arguments.messages)
