"""Bounded waits on peers: a silent peer is dropped when its ping times out; a stuck reader when a send times out."""

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode

from websuckets import CommandGroup, Session, User, WebSuckets
from websuckets.delivery import server_frame


async def test_a_silent_peer_leaves_session_online_when_its_ping_times_out() -> None:
    """A peer that stops answering leaves Session.online (its disconnect hook runs) after ping interval
    and timeout, not a close timeout later: here the close timeout is far longer than the test's limit."""
    app = WebSuckets(ping_interval=0.1, ping_timeout=0.2)
    left = asyncio.Event()

    @app.on_disconnect
    async def gone(user: User) -> None:
        left.set()

    async with app, app.serve("127.0.0.1", 0, close_timeout=60) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", ping_interval=None, close_timeout=0.1) as ws:
            assert ws.transport is not None
            ws.transport.pause_reading()  # the client goes silent: it answers no ping any more
            await asyncio.wait_for(left.wait(), 10)
            assert app.dispatcher.open_connections == 0
            ws.transport.abort()


async def test_a_live_idle_client_is_pinged_and_stays_across_many_intervals() -> None:
    """Every ping interval the server pings; the client's pongs keep it connected and give the latency."""
    app = WebSuckets(ping_interval=0.05, ping_timeout=0.05)
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", ping_interval=None) as ws:
            await asyncio.sleep(0.6)  # more than ten intervals: a missed pong would have dropped it
            (user,) = Session.online.values()
            assert user.socket.state.name == "OPEN"
            assert user.socket.latency > 0  # set when a pong answers the server's ping
            await ws.send('{"event": "nothing"}')  # and the connection still works both ways
            assert "unknown_command" in str(await asyncio.wait_for(ws.recv(), 5))


async def test_idle_connections_hold_no_keepalive_task() -> None:
    """Pings come from timers the loop's connections share: an idle connection holds its handler's task alone."""
    app = WebSuckets(ping_interval=20)
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        before = len(asyncio.all_tasks())
        clients = [await connect(f"ws://127.0.0.1:{port}", ping_interval=None) for _ in range(20)]
        try:
            for _ in range(100):  # bounded: until every connection is served
                if len(Session.online) == 20:
                    break
                await asyncio.sleep(0.01)
            assert len(Session.online) == 20
            # one task a connection: the server's handler (the clients, with ping_interval=None, run none)
            assert len(asyncio.all_tasks()) - before == 20
        finally:
            for client in clients:
                await client.close()


async def test_a_send_to_a_client_that_reads_nothing_times_out_and_closes_with_1013() -> None:
    """A handler sending to a stuck client waits send_timeout at most, then gets ConnectionClosed (1013 sent)."""
    app = WebSuckets(send_timeout=0.3)
    outcome: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
    group = CommandGroup("x")

    @group.command("flood")
    async def flood(socket: ServerConnection) -> None:
        chunk = "x" * 2**20
        try:
            for _ in range(256):  # bounded: 256 MiB at most, far more than the socket buffers hold
                await socket.send(chunk)
        except ConnectionClosed as exc:
            outcome.set_result(exc.sent.code if exc.sent else None)
            raise
        outcome.set_result(None)

    app.include_command_group(group)
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", max_size=None, close_timeout=0.1) as ws:
            await ws.send('{"event": "x flood"}')
            assert ws.transport is not None
            ws.transport.pause_reading()
            assert await asyncio.wait_for(outcome, 20) == CloseCode.TRY_AGAIN_LATER
            ws.transport.abort()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
def test_server_frame_is_the_frame_websockets_serialises(opcode: Opcode, size: int) -> None:
    """server_frame (text sends, fan-out) builds Frame.serialize's unmasked final frame, at each header length."""
    data = bytes(i % 251 for i in range(size)) if opcode is Opcode.BINARY else b"x" * size
    assert server_frame(opcode, data) == Frame(opcode, data).serialize(mask=False, extensions=[])
