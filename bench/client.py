"""The load generator: picows connections in one process, driven by `bench/run.py`.

It prints JSON lines on stdout: ``{"phase": "measuring"}`` when the warm-up ends,
``{"phase": "done"}`` when the measured window ends (so the runner can read the server's
CPU time over exactly that window), then ``{"result": {...}}``. For ``idle`` it prints
``{"phase": "connected"}`` once every connection is open, then waits for a line on stdin
before closing them. Every wait is bounded.

Workloads (``--protocol socketio`` wraps the same JSON in Engine.IO/Socket.IO framing):

- ``command``: each connection keeps one ``user echo`` request in flight (closed loop);
- ``errors``: the same loop with ``n`` not an integer, so every reply is a ``validation_error``;
- ``fanout``: one extra connection sends ``chat say``, the ``--connections`` others receive
  each message; the sender keeps ``--window`` messages in flight (in a room with history,
  the ``websuckets position`` each connection gets when it joins is not counted);
- ``idle``: connections that send nothing;
- ``prime``: one throw-away connection that sends 64 KiB and drops the TCP connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from array import array
from typing import Any

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

BODY = b'{"nickname":"alice","text":"hello, world","n":%d}'
REQUESTS = {
    ("command", "ws"): b'{"event":"user echo","payload":' + BODY + b',"id":%d}',
    ("errors", "ws"): b'{"event":"user echo","payload":' + BODY.replace(b"%d", b'"x%d"') + b',"id":%d}',
    ("fanout", "ws"): b'{"event":"chat say","payload":' + BODY + b"}",
    ("command", "socketio"): b'42["user echo",{"payload":' + BODY + b',"id":%d}]',
    ("errors", "socketio"): b'42["user echo",{"payload":' + BODY.replace(b"%d", b'"x%d"') + b',"id":%d}]',
    ("fanout", "socketio"): b'42["chat say",{"payload":' + BODY + b"}]",
}
CONNECT_CONCURRENCY = 50
POSITION = b'{"event":"websuckets position"'


class Run:
    """The state shared by every connection of one workload."""

    def __init__(self, workload: str, protocol: str, expected: bytes, fanout_receivers: int, window: int) -> None:
        self.workload = workload
        self.protocol = protocol
        self.expected = expected
        self.running = True
        self.measuring = False
        self.count = 0
        self.latencies = array("d")
        self.bad: bytes | None = None
        self.deliveries = 0  # fan-out: every delivery since the start
        self.receivers = fanout_receivers
        self.window = window
        self.sender: Client | None = None
        self.sent = 0
        self.in_flight = 0
        self.drained = asyncio.Event()  # set once the loop has stopped and no request is in flight

    def reply(self, client: Client, data: bytes) -> None:
        if data.startswith(POSITION):  # a room with history tells each member its position when it joins
            return
        bad = None if self.expected in data else data[:300]
        if bad is None and client.checks:  # the first replies of each connection are parsed, their id checked
            client.checks -= 1
            if self.workload in ("command", "errors") and reply_id(data, self.protocol) != client.n:
                bad = b"wrong id: " + data[:300]
        if bad is not None:  # stop everything: the figures would not mean what they say
            self.bad = self.bad or bad
            self.running = False
            self.landed(client)
            return
        if self.workload == "fanout":
            self.deliveries += 1
            if self.measuring:
                self.count += 1
            self.feed_fanout()
            return
        now = time.perf_counter()
        if self.measuring:
            self.count += 1
            self.latencies.append(now - client.sent_at)
        if self.running:
            client.send_request()
        else:
            self.landed(client)

    def landed(self, client: Client) -> None:
        """A connection's request came back (or never will): count it out once the loop has stopped."""
        if client.in_flight:
            client.in_flight = False
            self.in_flight -= 1
        if not self.running and not self.in_flight:
            self.drained.set()

    def feed_fanout(self) -> None:
        sender = self.sender
        if sender is None or sender.transport is None:
            return
        while self.running and self.sent - self.deliveries // self.receivers < self.window:
            self.sent += 1
            sender.n = self.sent
            sender.transport.send(WSMsgType.TEXT, sender.template % (self.sent,))


def reply_id(data: bytes, protocol: str) -> Any:
    """The id a reply answers: top-level ``id``, or ``payload.id`` in an error event."""
    message = json.loads(data[2:]) if protocol == "socketio" else json.loads(data)
    if protocol == "socketio":
        message = message[1]
    if "id" in message:
        return message["id"]
    return message.get("payload", {}).get("id")


class Client(WSListener):
    """One connection; for Socket.IO it answers the handshake and pings itself."""

    def __init__(self, run: Run, template: bytes) -> None:
        self.run = run
        self.template = template
        self.transport: WSTransport | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self.n = 0
        self.sent_at = 0.0
        self.in_flight = False
        self.checks = 2

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self.run.protocol == "ws":
            self.ready.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            if frame.msg_type is WSMsgType.CLOSE:
                transport.disconnect()
            return
        data = frame.get_payload_as_bytes()
        if self.run.protocol == "socketio" and not data.startswith(b"42"):
            self.engine_io(transport, data)
        elif self.run.workload not in ("idle", "prime"):
            self.run.reply(self, data)

    def engine_io(self, transport: WSTransport, data: bytes) -> None:
        if data.startswith(b"0"):  # Engine.IO open: connect to the default namespace
            transport.send(WSMsgType.TEXT, b"40")
        elif data.startswith(b"40") and not self.ready.done():  # Socket.IO connected
            self.ready.set_result(None)
        elif data == b"2":  # Engine.IO ping
            transport.send(WSMsgType.TEXT, b"3")

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.run.landed(self)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the handshake ended"))

    def send_request(self) -> None:
        assert self.transport is not None
        self.n += 1
        if not self.in_flight:
            self.in_flight = True
            self.run.in_flight += 1
        self.sent_at = time.perf_counter()
        self.transport.send(WSMsgType.TEXT, self.template % (self.n, self.n))


async def connect(
    url: str,
    count: int,
    run: Run,
    template: bytes,
    concurrency: int = CONNECT_CONCURRENCY,
    source: str | None = None,
) -> list[Client]:
    """Open ``count`` connections, at most ``concurrency`` handshakes at a time, from ``source`` if given."""
    limit = asyncio.Semaphore(concurrency)
    local = {"local_addr": (source, 0)} if source else {}

    async def one() -> Client:
        async with limit:
            _, client = await ws_connect(lambda: Client(run, template), url, websocket_handshake_timeout=10, **local)
            assert isinstance(client, Client)
            await asyncio.wait_for(client.ready, 10)
            return client

    async with asyncio.timeout(60 + count / 20):
        return list(await asyncio.gather(*(one() for _ in range(count))))


async def close(clients: list[Client]) -> None:
    """The closing handshake on every connection; the server closes TCP, or we do after 5 s."""
    transports = [client.transport for client in clients if client.transport is not None]
    for transport in transports:
        transport.send_close(WSCloseCode.OK)
    try:
        async with asyncio.timeout(5):
            await asyncio.gather(*(transport.wait_disconnected() for transport in transports))
    except TimeoutError:
        for transport in transports:
            transport.disconnect()


def emit(**message: Any) -> None:
    print(json.dumps(message), flush=True)


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(arguments: argparse.Namespace) -> None:
    workload, protocol = arguments.workload, arguments.protocol
    url = arguments.url + ("socket.io/?EIO=4&transport=websocket" if protocol == "socketio" else "")
    if workload == "prime":
        await prime(url, protocol)
        return
    expected = {"command": b'"echo"', "errors": b'"validation_error"', "fanout": b'"chat"', "idle": b""}[workload]
    if arguments.raw:  # the raw echo server sends the request back
        expected = b'"user echo"'
    run = Run(workload, protocol, expected, arguments.connections, arguments.window)

    template = REQUESTS.get((workload, protocol), b"")
    connecting = time.perf_counter()
    clients = await connect(url, arguments.connections, run, template, arguments.connect_concurrency, arguments.source)
    if workload == "idle":
        emit(phase="connected", connections=len(clients), seconds=time.perf_counter() - connecting)
        await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline), arguments.hold)
        await close(clients)
        emit(result={"connections": len(clients)})
        return
    if workload == "fanout":
        run.sender = (await connect(url, 1, run, REQUESTS[("fanout", protocol)]))[0]
        clients.append(run.sender)
        run.feed_fanout()
    else:
        for client in clients:
            client.send_request()
    await asyncio.sleep(arguments.warmup)
    emit(phase="measuring")
    cpu, started, count = time.process_time(), time.perf_counter(), run.count
    run.measuring = True
    await asyncio.sleep(arguments.duration)
    run.measuring = False
    run.running = False
    if not run.in_flight:
        run.drained.set()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    emit(phase="done")
    with contextlib.suppress(TimeoutError):  # let the requests in flight come back before closing
        await asyncio.wait_for(run.drained.wait(), 10)
    await close(clients)
    if run.bad is not None:
        raise SystemExit(f"unexpected reply: {run.bad!r}")
    ordered = sorted(run.latencies)
    emit(
        result={
            "count": run.count - count,
            "elapsed": elapsed,
            "rate": (run.count - count) / elapsed,
            "p50_ms": percentile(ordered, 0.50) * 1e3,
            "p99_ms": percentile(ordered, 0.99) * 1e3,
            "max_ms": (ordered[-1] if ordered else 0.0) * 1e3,
            "client_cpu": cpu,
        }
    )


async def prime(url: str, protocol: str) -> None:
    """Send 64 KiB on a throw-away connection, then drop it: the server reads EOF on a full buffer."""
    run = Run("prime", protocol, b"", 1, 1)
    (client,) = await connect(url, 1, run, b"")
    assert client.transport is not None
    junk = b'{"event":"bench warm-up","payload":"' + b"x" * 65536 + b'"}'
    client.transport.send(WSMsgType.TEXT, (b"42" + junk) if protocol == "socketio" else junk)
    await asyncio.sleep(0.2)
    client.transport.disconnect()
    await asyncio.wait_for(client.transport.wait_disconnected(), 5)
    await asyncio.sleep(0.2)
    emit(result={"primed": True})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/")
    parser.add_argument("--workload", choices=["command", "errors", "fanout", "idle", "prime"], required=True)
    parser.add_argument("--protocol", choices=["ws", "socketio"], default="ws")
    parser.add_argument("--raw", action="store_true", help="the server echoes requests back unchanged")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--window", type=int, default=8, help="fan-out messages in flight")
    parser.add_argument(
        "--connect-concurrency", type=int, default=CONNECT_CONCURRENCY, help="handshakes in flight while connecting"
    )
    parser.add_argument("--source", help="the local address to connect from (spreads ports over 127.0.0.0/8)")
    parser.add_argument("--hold", type=float, default=120.0, help="idle: seconds to wait for the line that closes")
    asyncio.run(measure(parser.parse_args()))
