"""A server's own instructions a reply, end to end, counted by valgrind's callgrind: the command
path over real connections, in a figure the machine's noise does not move.

Each server of ``bench/run.py``'s command workload runs under ``valgrind --tool=callgrind``
(pinned to CPU 0 when ``taskset`` exists) and answers ``--connections`` websockets clients on
127.0.0.1, each keeping one ``user echo`` request in flight (closed loop, as ``bench/run.py``'s
``command``). A server's figure is the count of a run of ``--messages`` messages a connection
less that of a run of a sixth of them (start-up, imports and the handshakes cancel out), divided
by the difference in replies. Callgrind counts user-space instructions only: the kernel's part
(a ``recv`` and a ``send`` a message, the same calls in every server here) is not in it. Replies/s
go as the inverse of the figure only as far as the servers spend their time alike elsewhere, so
the end-to-end runs stay the measure of the aims, and this is their noise-free companion.

    .venv/bin/python bench/server_instructions.py                  # about 10 minutes
    .venv/bin/python bench/server_instructions.py --messages 60    # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time

from run import ROOT, SERVERS, SERVERS_DIR, free_port, pin
from websockets.asyncio.client import ClientConnection, connect

COMPARED = {
    "websuckets": "handrolled",
    "websuckets_limited": "handrolled",
    "handrolled": None,
    "websuckets_di": "handrolled_dishka",
    "handrolled_dishka": None,
}
"""The servers counted, each with its reference (``bench/run.py``'s names): rate limits are off but in
``websuckets_limited`` (one that is never reached), as the hand-rolled servers have none."""

REQUEST = '{"event":"user echo","payload":{"nickname":"alice","text":"hello, world","n":%d},"id":%d}'


async def load(port: int, connections: int, messages: int) -> None:
    """``connections`` clients, each sending ``messages`` requests one at a time, each waiting its reply."""
    deadline = time.monotonic() + 120  # the server starts slowly under valgrind
    while True:
        try:
            clients = [await connect(f"ws://127.0.0.1:{port}/", open_timeout=60) for _ in range(connections)]
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    await asyncio.gather(*(requests(client, messages) for client in clients))
    await asyncio.gather(*(client.close() for client in clients))


async def requests(client: ClientConnection, messages: int) -> None:
    for n in range(messages):
        await client.send(REQUEST % (n, n))
        reply = await asyncio.wait_for(client.recv(), 60)
        if '"echo"' not in str(reply):  # counting another path (an error's) would mislead
            raise RuntimeError(f"not an echo: {reply[:300]!r}")


def counted(name: str, connections: int, messages: int) -> int:
    """The instructions ``name`` runs from its start to its exit, having answered ``messages`` a connection."""
    output = serve(name, connections, messages, ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"])
    found = re.search(r"Collected : (\d+)", output)
    if found is None:
        raise RuntimeError(f"valgrind printed no count for {name}:\n{output[-2000:]}")
    return int(found.group(1))


def serve(name: str, connections: int, messages: int, tool: list[str]) -> str:
    """Start ``name`` under ``tool``, have it answer the load, stop it; what it printed."""
    argv, port = SERVERS[name].argv, free_port()
    command = [*pin(0, shutil.which("taskset") is not None), *tool, sys.executable, str(SERVERS_DIR / argv[0])]
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen([*command, *argv[1:], "--port", str(port)], cwd=ROOT, stdout=log, stderr=log)
        try:
            asyncio.run(load(port, connections, messages))
        finally:
            stop(server)
        log.seek(0)
        return log.read()


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM (valgrind still prints its count as the process ends; SIGINT is ignored by a server that
    a background job started), then SIGKILL if it has not ended within 60 s."""
    server.terminate()
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        print("the server did not exit within 60 s of SIGTERM: killed", file=sys.stderr)
        server.kill()
        server.wait()


def main(connections: int, messages: int) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    few = messages // 6
    replies = connections * (messages - few)
    print(f"a server's instructions a reply: {connections} connections x {messages} requests less x {few}")
    print("| server | instructions a reply | x its reference |")
    print("|---|---:|---:|")
    figures = {
        name: (counted(name, connections, messages) - counted(name, connections, few)) / replies for name in COMPARED
    }
    for name, reference in COMPARED.items():
        ratio = "" if reference is None else f"{figures[name] / figures[reference]:.2f}x {SERVERS[reference].label}"
        print(f"| {SERVERS[name].label} | {figures[name]:,.0f} | {ratio} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--messages", type=int, default=300, help="requests a connection (default 300)")
    parser.add_argument("--check", action="store_true", help=argparse.SUPPRESS)  # the tests: each server, natively
    arguments = parser.parse_args()
    if arguments.check:
        for name in COMPARED:
            serve(name, arguments.connections, arguments.messages, [])
            print(f"{name}: answered {arguments.connections} x {arguments.messages}")
    else:
        main(arguments.connections, arguments.messages)
