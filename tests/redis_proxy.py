"""A TCP proxy on 127.0.0.1 in front of a redis-server, for faults no real network makes on demand: a
command that reaches Redis and runs, whose answer never comes back (`CuttingProxy.cut_at`), and a
server that refuses connections for a while (`CuttingProxy.refuse`).

It runs in the test's event loop; everything it forwards goes over loopback.
"""

from __future__ import annotations

import asyncio

from redis_server import free_port

__all__ = ["CuttingProxy"]


class CuttingProxy:
    """Forwards ``127.0.0.1:port`` to a redis-server on ``127.0.0.1:upstream``, connection by connection."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.cuts = 0
        """Connections cut so far: each after its command ran in Redis (its answer read, and dropped)."""
        self.seen = 0
        """Times the marker of `cut_at` went through (the cut one, and any sent again after it)."""
        self._marker: bytes | None = None
        self._armed = False
        self._refuse_after_cut = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Listen (again, on the same port)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def refuse(self) -> None:
        """Stop listening: new connections are refused; those open go on."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def cut_at(self, marker: bytes, refuse: bool = False) -> None:
        """The next data a client sends holding ``marker`` goes to Redis; once Redis has answered, the
        client's connection is closed without the answer. With ``refuse``, the proxy stops listening then.
        Later data holding ``marker`` (the command sent again) goes through, counted in `seen`."""
        self._marker, self._armed, self._refuse_after_cut = marker, True, refuse

    async def close(self) -> None:
        await self.refuse()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            redis_reader, redis_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            client_writer.close()
            return
        cut = asyncio.Event()

        async def to_redis() -> None:
            while data := await client_reader.read(65536):
                if self._marker is not None and self._marker in data:
                    self.seen += 1
                    if self._armed:
                        self._armed = False
                        cut.set()  # before the write: its answer must not slip through
                        redis_writer.write(data)
                        await redis_writer.drain()
                        return
                redis_writer.write(data)
                await redis_writer.drain()

        async def to_client() -> None:
            while data := await redis_reader.read(65536):
                if cut.is_set():  # Redis answered (so it ran the marked command): the client never hears it
                    self.cuts += 1
                    if self._refuse_after_cut:
                        await self.refuse()
                    return
                client_writer.write(data)
                await client_writer.drain()

        outward, inward = asyncio.create_task(to_redis()), asyncio.create_task(to_client())
        for pump in (outward, inward):
            self._tasks.add(pump)
            pump.add_done_callback(self._tasks.discard)
        try:
            await asyncio.wait((outward, inward), return_when=asyncio.FIRST_COMPLETED)
            if cut.is_set():
                await asyncio.wait((inward,), timeout=5)  # Redis's answer to the marked command
        finally:
            for pump in (outward, inward):
                pump.cancel()
            for writer in (client_writer, redis_writer):
                writer.close()
