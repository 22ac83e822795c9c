"""One worker process of ``websuckets run --workers N``: what runs in each child.

The child imports the app by its spec, then serves it on the socket the supervisor gave it
(or on one of its own, bound with ``SO_REUSEPORT``) with the app's own lifecycle:
``async with app``, `WebSuckets.serve`, `WebSuckets.shutdown` on SIGTERM. It talks to the
supervisor over a pipe, one line a message:

- ``beat``, written by the event loop itself every ``heartbeat`` seconds, so that a loop blocked
  by a handler stops beating (a thread would go on beating for it);
- ``ready`` once the app has started; it then waits, accepting no connection, for the
  supervisor's SIGUSR2, sent to every worker once all are ready: they start accepting together;
- ``serving`` once it accepts connections;
- ``boot-failed REASON`` when it could not get that far; it then exits with `BOOT_FAILED`.

A worker whose backend gives up (``RedisBackend(exit_after=...)``: Redis unusable too long) shuts
down as on SIGTERM (clients get 1001), then exits with `BACKEND_GAVE_UP`; the supervisor restarts it
like a crashed one.

It ignores SIGINT (Ctrl+C reaches every process of the terminal's group: the supervisor
decides), and stops gracefully when the supervisor is gone (its pipe breaks). SIGTERM stops it
gracefully once its event loop runs; before, while it imports the app, it ends the process
(SIGTERM's default action): nothing has started yet.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from . import serving
from .app import WebSuckets
from .exc import InternalError, WebSucketsError
from .listening import reuse_port_socket

logger = logging.getLogger("websuckets.worker")

BOOT_FAILED = 3
"""The exit code of a worker that failed before it served (gunicorn's ``WORKER_BOOT_ERROR``)."""
BACKEND_GAVE_UP = 4
"""The exit code of a worker that stopped because its backend gave up (it logged why, at ERROR)."""

LOG_FORMAT = "%(asctime)s %(levelname)s {who} %(name)s: %(message)s"


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop factory for ``--loop asyncio`` or ``--loop uvloop``."""
    if name == "uvloop":
        import uvloop  # an optional dependency, imported only when chosen

        return uvloop.new_event_loop
    return asyncio.new_event_loop


@dataclass(frozen=True)
class WorkerConfig:
    """What the supervisor hands a worker; pickled into the spawned process."""

    spec: str
    slot: int
    loop: str
    log_level: str
    load: Callable[[str], WebSuckets]
    settings: dict[str, Any]
    """App attributes given on the command line, set after the import."""
    tls: tuple[str, str | None] | None
    """``(certfile, keyfile)`` to serve ``wss://``."""
    pipe: Connection
    heartbeat: float
    sock: socket.socket | None
    """The supervisor's listening socket, or None to listen on one of our own with ``SO_REUSEPORT``."""
    address: Any
    family: int

    @property
    def name(self) -> str:
        return f"worker[{self.slot}] pid {os.getpid()}"


class _BootFailure(Exception):
    pass


class _Pipe:
    """The write end of the pipe to the supervisor; never blocks the event loop."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection  # it owns the file descriptor
        self._fd = connection.fileno()
        os.set_blocking(self._fd, False)

    def send(self, message: str) -> bool:
        """Write one line; False once the supervisor is gone."""
        try:
            os.write(self._fd, message.replace("\n", " ").encode() + b"\n")
        except BlockingIOError:  # the supervisor is behind: a heartbeat more or less does not matter
            pass
        except BrokenPipeError:
            return False
        return True


def run_worker(config: WorkerConfig) -> None:
    """The worker's entry point, in the spawned process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a stuck worker's stack, before its SIGKILL
    logging.basicConfig(level=config.log_level.upper(), format=LOG_FORMAT.format(who=config.name))
    pipe = _Pipe(config.pipe)
    try:
        app = config.load(config.spec)
        context = prepare(app, config.settings, config.tls)
        with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
            runner.run(_serve(app, config, pipe, context))
    except _BootFailure as exc:
        pipe.send(f"boot-failed {exc}")
        sys.exit(BOOT_FAILED)
    except Exception as exc:
        pipe.send(f"boot-failed {_reason(exc)}")
        sys.exit(BOOT_FAILED)


def prepare(app: WebSuckets, settings: dict[str, Any], tls: tuple[str, str | None] | None) -> ssl.SSLContext | None:
    """Set the command line's ``settings`` on ``app``; the server's TLS context for ``(certfile, keyfile)``."""
    for name, value in settings.items():
        setattr(app, name, value)
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls)
    return context


async def _serve(app: WebSuckets, config: WorkerConfig, pipe: _Pipe, context: ssl.SSLContext | None) -> None:
    """Start the app, serve once the supervisor says so (SIGUSR2) until SIGTERM or the supervisor's death,
    then shut down as `WebSuckets.__call__` does."""
    loop = asyncio.get_running_loop()
    stop, go = asyncio.Event(), asyncio.Event()

    def on_stop() -> None:
        stop.set()
        go.set()  # a worker told to stop before it serves never serves

    heartbeat = _Heartbeat(loop, pipe, config.heartbeat, on_stop)
    loop.add_signal_handler(signal.SIGTERM, on_stop)
    loop.add_signal_handler(signal.SIGUSR2, go.set)
    started = False
    failure = None
    try:
        sock = config.sock if config.sock is not None else reuse_port_socket(config.family, config.address)
        async with app, app.serve(None, None, sock=sock, ssl=context, start_serving=False) as server:
            started = True
            pipe.send("ready")
            await go.wait()
            if not stop.is_set():
                await server.start_serving()
                pipe.send("serving")
                failure = await serving.stopped_or_failed(stop.wait(), app.backend.failure())
            logger.info("shutting down" if failure is None else "shutting down: the backend gave up")
            await app.shutdown(server)
            if failure is not None:
                raise SystemExit(BACKEND_GAVE_UP)
    except Exception as exc:
        if started:
            logger.exception("crashed")
            raise SystemExit(1) from None
        raise _BootFailure(_reason(exc)) from None
    finally:
        heartbeat.stop()
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGUSR2)
        # on its way out, a late "serve" or "stop" must not kill the worker: a SIGTERM to the whole group
        # reaches it, then the supervisor's own SIGTERM, which may come once it has stopped
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _Heartbeat:
    """``beat`` on the pipe every ``interval`` seconds, from the event loop; ``stop()`` once the pipe breaks."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pipe: _Pipe, interval: float, stop: Callable[[], None]) -> None:
        self._loop = loop
        self._pipe = pipe
        self._interval = interval
        self._stop = stop
        self._next = loop.call_soon(self._beat)

    def _beat(self) -> None:
        if self._pipe.send("beat"):
            self._next = self._loop.call_later(self._interval, self._beat)
        else:
            logger.warning("the supervisor is gone: stopping")
            self._stop()

    def stop(self) -> None:
        self._next.cancel()


def _reason(exc: Exception) -> str:
    """One line saying why the worker could not start; the traceback too when the message is not enough."""
    if isinstance(exc, InternalError) and exc.details is not None:  # BackendUnavailable: "cannot reach Redis at ..."
        return str(exc.details)
    if isinstance(exc, WebSucketsError | OSError):  # written for the operator: AppStateError, a port in use
        return str(exc)
    logger.error("could not start", exc_info=exc)
    return f"{type(exc).__name__}: {exc} (its traceback is above)"
