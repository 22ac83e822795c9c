"""The load generator of `bench/scale_out.py`: direct messages, from senders on one server to receivers.

``--pairs`` receivers connect to ``--receiver-url`` and ask their id (``bench whoami``);
as many senders connect to ``--sender-url`` and, sender i to receiver i, send the
documentation's ``send message`` command with ``text`` set to ``time.perf_counter_ns()``
taken just before the frame is written. Each receiver subtracts that from its own clock on
arrival: CLOCK_MONOTONIC is one clock for every process of a Linux machine. Before measuring,
each sender probes until its server sees its receiver (no ``такой клиент не подключен`` error).

- ``--mode open``: messages leave at ``--rate`` per second in total, round robin over the
  senders, whatever the replies do (an open loop; a late timer sends what is due at once);
- ``--mode closed``: each sender keeps ``--window`` messages in flight to its receiver.

``--rooms``: receiver i joins the room ``pair-i`` (``bench join``) and sender i broadcasts to it
(``bench say``, `servers/websuckets_room_channels.py`): the same loop through room channels.

``--protocol socketio`` speaks the same commands in Socket.IO framing (``42["send message",
{...}]``), after Engine.IO's and Socket.IO's handshakes, answering the server's pings:
`servers/socketio_relay.py`. Frames are turned back into ``{"event": ..., "payload": ...}``
by slicing, not parsing, so the client's work per message stays close to the plain protocol's.

It prints one JSON line, ``{"result": {...}}``: latency percentiles over the messages sent in
the measured window, deliveries per second received in it, how far the sender fell behind
its schedule, what was lost, and what came twice or out of its sender's order (each sender's
messages carry increasing send times). Every wait is bounded.
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

SEND = b'{"event":"send message","payload":{"to":"%s","text":"%%d"}}'
WHOAMI = b'{"event":"bench whoami"}'
ROOM_SAY = b'{"event":"bench say","payload":{"room":"%s","text":"%%d"}}'
ROOM_JOIN = b'{"event":"bench join","payload":{"room":"%s"}}'
SOCKETIO_SEND = b'42["send message",{"to":"%s","text":"%%d"}]'
SOCKETIO_WHOAMI = b'42["bench whoami"]'
SOCKETIO_PATH = "socket.io/?EIO=4&transport=websocket"
INCOMING = b'{"event":"incoming message"'
TEXT = b'"text":"'


class Run:
    def __init__(self) -> None:
        self.window_start = 0  # perf_counter_ns: messages sent in [window_start, window_end) are measured
        self.window_end = 1 << 62
        self.running = True
        self.latencies = array("q")
        self.sent = 0
        self.received = 0
        self.received_in_window = 0
        self.disordered = 0
        """Messages that reached their receiver after a later one of the same sender, or twice."""
        self.acked = 0
        self.bad: bytes | None = None
        self.drained = asyncio.Event()

    def fail(self, data: bytes) -> None:
        self.bad = self.bad or data[:300]
        self.running = False
        self.drained.set()


class Listener(WSListener):
    """A connection: ``ready`` once it may send (after Socket.IO's handshake, with that protocol)."""

    def __init__(self, run: Run, socketio: bool) -> None:
        self.run = run
        self.socketio = socketio
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if not self.socketio:
            self.ready.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            if frame.msg_type is WSMsgType.CLOSE:
                transport.disconnect()
            return
        now = time.perf_counter_ns()
        data = frame.get_payload_as_bytes()
        if self.socketio:
            data = self.engine_io(transport, data)
            if data is None:
                return
        self.on_message(data, now)

    def engine_io(self, transport: WSTransport, data: bytes) -> bytes | None:
        """A Socket.IO event as ``{"event":...,"payload":...}``; None for the protocol's own frames."""
        if data.startswith(b"42["):
            end = data.index(b'"', 4)
            name, rest = data[4:end], data[end + 1 : -1]
            payload = rest[1:] if rest.startswith(b",") else b"null"
            return b'{"event":"' + name + b'","payload":' + payload + b"}"
        if data == b"2":  # Engine.IO ping
            transport.send(WSMsgType.TEXT, b"3")
        elif data.startswith(b"0"):  # Engine.IO open: connect to the default namespace
            transport.send(WSMsgType.TEXT, b"40")
        elif data.startswith(b"40") and not self.ready.done():
            self.ready.set_result(None)
        return None

    def on_message(self, data: bytes, now: int) -> None:
        raise NotImplementedError


class Receiver(Listener):
    def __init__(self, run: Run, socketio: bool) -> None:
        super().__init__(run, socketio)
        self.id: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pair: Pair | None = None
        self.last_sent = 0
        """The newest send time heard from this receiver's one sender: its messages carry increasing ones."""

    def on_message(self, data: bytes, now: int) -> None:
        if data.startswith(INCOMING):
            start = data.rfind(TEXT) + len(TEXT)
            text = data[start : data.index(b'"', start)]
            if not text.isdigit():
                return  # a probe
            sent = int(text)
            run = self.run
            run.received += 1
            if sent <= self.last_sent:  # a duplicate, or overtaken by a later message
                run.disordered += 1
            else:
                self.last_sent = sent
            if run.window_start <= sent < run.window_end:
                run.latencies.append(now - sent)
            if run.window_start <= now < run.window_end:
                run.received_in_window += 1
            if self.pair is not None and self.pair.closed_loop and run.running:
                self.pair.send()
            if not run.running and run.received >= run.sent:
                run.drained.set()
        elif data.startswith(b'{"event":"whoami"'):
            self.id.set_result(json.loads(data)["payload"])
        elif data.startswith(b'{"event":"join"'):
            self.id.set_result("")  # joined its room
        else:
            self.run.fail(b"receiver got: " + data)


class Sender(Listener):
    def __init__(self, run: Run, socketio: bool) -> None:
        super().__init__(run, socketio)
        self.probe: asyncio.Future[bytes] | None = None

    def on_message(self, data: bytes, now: int) -> None:
        if self.probe is not None and not self.probe.done():
            self.probe.set_result(data)
        elif data.startswith(b'{"event":"message sent"'):
            self.run.acked += 1
        else:
            self.run.fail(b"sender got: " + data)


class Pair:
    """Sender i and receiver i."""

    def __init__(
        self, sender: Sender, receiver: Receiver, receiver_id: str, closed_loop: bool, room: str | None = None
    ) -> None:
        self.sender = sender
        self.receiver = receiver
        if room is not None:
            self.template = ROOM_SAY % room.encode()
        else:
            self.template = (SOCKETIO_SEND if sender.socketio else SEND) % receiver_id.encode()
        self.closed_loop = closed_loop
        receiver.pair = self

    def send(self) -> None:
        assert self.sender.transport is not None
        self.sender.run.sent += 1
        self.sender.transport.send(WSMsgType.TEXT, self.template % time.perf_counter_ns())

    async def wait_visible(self, within: float) -> None:
        """Probe until the sender's server knows the receiver (it answers ``message sent``)."""
        assert self.sender.transport is not None
        deadline = time.monotonic() + within
        while True:
            self.sender.probe = asyncio.get_running_loop().create_future()
            self.sender.transport.send(WSMsgType.TEXT, self.template.replace(b"%d", b"probe"))
            reply = await asyncio.wait_for(self.sender.probe, within)
            if reply.startswith(b'{"event":"message sent"'):
                self.sender.probe = None
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"the sender's server never saw its receiver: {reply[:300]!r}")
            await asyncio.sleep(0.01)


async def connect(url: str, factory: Any) -> Any:
    _, listener = await ws_connect(factory, url, websocket_handshake_timeout=10)
    await asyncio.wait_for(listener.ready, 10)
    return listener


async def pace(pairs: list[Pair], run: Run, rate: float, end: int) -> int:
    """Send at ``rate`` per second until ``end`` (perf_counter_ns); the largest lag behind schedule, in ns."""
    interval = 1e9 / rate
    due = float(time.perf_counter_ns())
    index, lag = 0, 0
    while run.running:
        now = time.perf_counter_ns()
        if now >= end:
            break
        if due <= now:
            lag = max(lag, now - int(due))
        while due <= now:
            pairs[index % len(pairs)].send()
            index += 1
            due += interval
        await asyncio.sleep(max(0.0, (due - time.perf_counter_ns()) / 1e9))
    return lag


async def measure(arguments: argparse.Namespace) -> dict[str, Any]:
    run = Run()
    closed = arguments.mode == "closed"
    socketio = arguments.protocol == "socketio"
    path = SOCKETIO_PATH if socketio else ""
    async with asyncio.timeout(30):
        receiver_url, sender_url = arguments.receiver_url + path, arguments.sender_url + path
        receivers = [await connect(receiver_url, lambda: Receiver(run, socketio)) for _ in range(arguments.pairs)]
        ids = []
        rooms = [f"pair-{index}" if arguments.rooms else None for index in range(arguments.pairs)]
        for receiver, room in zip(receivers, rooms, strict=True):
            ask = ROOM_JOIN % room.encode() if room else SOCKETIO_WHOAMI if socketio else WHOAMI
            receiver.transport.send(WSMsgType.TEXT, ask)
            ids.append(await receiver.id)
        senders = [await connect(sender_url, lambda: Sender(run, socketio)) for _ in range(arguments.pairs)]
        pairs = [Pair(s, r, i, closed, room) for s, r, i, room in zip(senders, receivers, ids, rooms, strict=True)]
        for pair in pairs:
            await pair.wait_visible(10)
    cpu = time.process_time()
    start = time.perf_counter_ns()
    run.window_start = start + int(arguments.warmup * 1e9)
    run.window_end = run.window_start + int(arguments.duration * 1e9)
    lag = 0
    if closed:
        for pair in pairs:
            for _ in range(arguments.window):
                pair.send()
        await asyncio.sleep((run.window_end - time.perf_counter_ns()) / 1e9)
    else:
        lag = await pace(pairs, run, arguments.rate, run.window_end)
    run.running = False
    cpu = time.process_time() - cpu
    if run.received >= run.sent:
        run.drained.set()
    with contextlib.suppress(TimeoutError):  # what is still missing then counts as lost
        await asyncio.wait_for(run.drained.wait(), 10)
    transports = [listener.transport for listener in [*senders, *receivers]]
    for transport in transports:
        transport.send_close(WSCloseCode.OK)
    try:
        await asyncio.wait_for(asyncio.gather(*(t.wait_disconnected() for t in transports)), 5)
    except TimeoutError:
        for transport in transports:
            transport.disconnect()
    if run.bad is not None:
        raise SystemExit(f"unexpected message: {run.bad!r}")
    ordered = sorted(run.latencies)

    def percentile(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6 if ordered else 0.0

    return {
        "count": len(ordered),
        "rate": run.received_in_window / arguments.duration,
        "sent": run.sent,
        "lost": run.sent - run.received,
        "disordered": run.disordered,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "p999_ms": percentile(0.999),
        "max_ms": ordered[-1] / 1e6 if ordered else 0.0,
        "lag_ms": lag / 1e6,
        "client_cpu": cpu / (arguments.warmup + arguments.duration),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sender-url", required=True)
    parser.add_argument("--receiver-url", required=True)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--mode", choices=["open", "closed"], default="open")
    parser.add_argument("--rate", type=float, default=1000.0, help="open loop: messages per second, in total")
    parser.add_argument("--window", type=int, default=16, help="closed loop: messages in flight per sender")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--protocol", choices=["ws", "socketio"], default="ws")
    parser.add_argument("--rooms", action="store_true", help="broadcast to a room per pair (bench say)")
    result = asyncio.run(measure(parser.parse_args()))
    print(json.dumps({"result": result}), flush=True)
    sys.exit(0)
