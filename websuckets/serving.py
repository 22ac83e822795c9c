"""Serving a started app: its connections' class, a graceful stop, and what ``await app(host, port)`` needs.

`websuckets.WebSuckets.serve`, ``shutdown`` and ``__call__`` are built on these.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine, Sequence
from typing import Any

from websockets.asyncio.server import Server

from .connection import GuardedConnection, drop_waiting_handshakes, guarded_connection
from .dispatcher import Dispatcher
from .instrument import Instrument

logger = logging.getLogger("websuckets")


def connection_class(send_timeout: float | None, instruments: Sequence[Instrument]) -> type[GuardedConnection]:
    """The class of the server's connections: a `GuardedConnection`, as each instrument makes it in turn."""
    connection = guarded_connection(send_timeout)
    for instrument in instruments:
        connection = instrument.connection_class(connection)
    return connection


async def stop_gracefully(server: Server, dispatcher: Dispatcher, grace: float) -> None:
    """Stop accepting, let in-flight commands finish (``grace`` seconds), close connections with 1001.

    See `websuckets.WebSuckets.shutdown`.
    """
    server.server.close()  # stop listening; open connections go on
    await asyncio.sleep(0)  # connections accepted just before are registered now
    drop_waiting_handshakes(server)
    if not await dispatcher.wait_idle(grace):
        logger.warning("shutdown: commands still running after %.1f s", grace)
    drop_waiting_handshakes(server)
    server.close()
    try:
        await asyncio.wait_for(asyncio.shield(server.wait_closed()), grace)
    except TimeoutError:
        logger.warning("shutdown: cancelling %d connection handlers", len(server.handler_tasks))
        for task in server.handler_tasks:
            task.cancel()
        await server.wait_closed()


async def check_bindable(host: str, port: int) -> None:
    """Raise the `OSError` that binding ``host:port`` raises, if any; the port is free again on return.

    The sockets are bound and closed without listening, so no connection is accepted (nor left in
    TIME_WAIT) and the server binds the port again right after. Port 0 is always free.
    """
    if port == 0:
        return
    probe = await asyncio.get_running_loop().create_server(asyncio.Protocol, host, port, start_serving=False)
    probe.close()
    await probe.wait_closed()


def address(server: Server, host: str, scheme: str = "ws") -> str:
    """Where ``server`` listens, as a URL: ``ws://host:port``, the host as given (IPv6 in brackets)."""
    port = server.sockets[0].getsockname()[1] if server.sockets else 0
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


async def stopped_or_failed(
    stop: Coroutine[Any, Any, object], failure: Coroutine[Any, Any, Exception]
) -> Exception | None:
    """Wait for ``stop`` or ``failure`` (`websuckets.backends.base.Backend.failure`), whichever ends
    first, and cancel the other: ``failure``'s error, or None once ``stop`` has ended."""
    stopping, failing = asyncio.ensure_future(stop), asyncio.ensure_future(failure)
    try:
        await asyncio.wait((stopping, failing), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (stopping, failing):
            task.cancel()
        await asyncio.gather(stopping, failing, return_exceptions=True)
    return failing.result() if failing.done() and not failing.cancelled() else None


async def wait_for_signal(signals: Sequence[signal.Signals]) -> None:
    """Return once the process gets one of ``signals`` (where the event loop can handle them)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in signals:
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or not on this platform
            pass
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
