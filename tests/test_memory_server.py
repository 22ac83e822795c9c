"""`websuckets.memory_server`: websockets' own connections over an in-memory pipe, no socket."""

import asyncio
from http import HTTPStatus

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.http11 import Request, Response

from websuckets.memory_server import MemoryServer


async def echo(socket: ServerConnection) -> None:
    async for message in socket:
        await socket.send(message)


async def test_a_connection_runs_the_handler_over_the_opening_handshake() -> None:
    """The client's request reaches process_request; messages go both ways; the close ends the handler."""
    seen: list[tuple[str, str | None]] = []

    def record(connection: ServerConnection, request: Request) -> None:
        seen.append((request.path, request.headers.get("X-Test")))

    server = MemoryServer(echo, process_request=record)
    client, server_side = await server.connect("/room?x=1", headers={"X-Test": "yes"})
    await client.send("hello")
    assert await client.recv() == "hello"
    assert seen == [("/room?x=1", "yes")]
    assert server_side.remote_address == ("memory", 0)
    await client.close()
    server.close()
    await asyncio.wait_for(server.wait_closed(), 1)
    assert server_side.close_code == 1000


async def test_a_refused_handshake_raises_invalid_status() -> None:
    """A response from process_request refuses the upgrade; the client gets its status, as over TCP."""

    def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(HTTPStatus.FORBIDDEN, "no\n")

    server = MemoryServer(echo, process_request=refuse)
    with pytest.raises(InvalidStatus) as refused:
        await server.connect()
    assert refused.value.response.status_code == 403


async def test_a_frame_over_max_size_closes_with_1009() -> None:
    """The server's protocol checks the size of what it receives."""
    server = MemoryServer(echo, max_size=10)
    client, _ = await server.connect()
    await client.send("x" * 11)
    with pytest.raises(ConnectionClosedError):
        await client.recv()
    assert client.close_code == 1009


async def test_a_peer_that_reads_nothing_holds_the_writer_back() -> None:
    """What a paused reader leaves counts in the writer's buffer, and pauses the writer past its limit."""
    release = asyncio.Event()

    async def push(socket: ServerConnection) -> None:
        for _ in range(100):
            await socket.send("x" * 1000)
        release.set()
        await socket.wait_closed()

    server = MemoryServer(push, compression=None)
    client, server_side = await server.connect(max_queue=2, compression=None)
    await asyncio.sleep(0.05)
    assert not release.is_set()  # the server's send waits for the client to read
    assert server_side.transport.get_write_buffer_size() > 2**15
    for _ in range(100):
        assert await client.recv() == "x" * 1000
    await asyncio.wait_for(release.wait(), 1)
    await client.close()


async def test_an_abort_ends_both_ends() -> None:
    """The server aborting the connection: the client sees it closed without a close frame (1006)."""

    async def abort(socket: ServerConnection) -> None:
        socket.transport.abort()
        await socket.wait_closed()

    server = MemoryServer(abort)
    client, _ = await server.connect()
    await asyncio.wait_for(client.wait_closed(), 1)
    assert client.close_code == 1006


async def test_closing_the_server_closes_its_connections_with_1001() -> None:
    """``close()`` refuses new handshakes and closes open connections as a listening server's does."""
    server = MemoryServer(echo)
    client, _ = await server.connect()
    server.close()
    await asyncio.wait_for(server.wait_closed(), 1)
    assert client.close_code == 1001
    with pytest.raises(InvalidStatus) as refused:
        await server.connect()
    assert refused.value.response.status_code == 503
