"""Several worker processes on one port, supervised: ``websuckets run --workers N``.

The supervisor (the parent process) binds the port, then starts the workers with
multiprocessing's *spawn* context: each is a fresh interpreter that imports the app by its
``MODULE:ATTRIBUTE`` spec and serves it with the app's own lifecycle. The supervisor:

- starts one worker alone, then the others once it has started the app: an app that cannot
  start (its module raises, its backend is unreachable in ``async with app``) fails once, with
  one error;
- opens the port only once every worker has started the app: until then no worker listens (the
  port refuses connections); then it tells them all at once (SIGUSR2) to accept, and prints the
  address once all of them do, so that the first clients are spread over every worker;
- reads a heartbeat that each worker's **event loop** writes to a pipe every second or so; a
  worker silent for ``worker_timeout`` seconds has a blocked loop: it dumps its Python stack
  (faulthandler, SIGUSR1) and is killed;
- logs a worker that exits or is killed, with its exit code or signal, and starts another in
  its place after a delay that doubles from 0.5 s to 30 s (reset once a worker has served a minute);
  one whose backend gave up (``RedisBackend(exit_after=...)``) too: while Redis stays away, its
  replacement cannot start the app, and once no worker serves any more the command exits 1
  (`WorkerBootError`), for the orchestrator to restart it whole;
- on SIGINT or SIGTERM, sends SIGTERM to every worker, which runs `WebSuckets.shutdown`
  (commands in flight finish, clients get 1001), and kills those still running after
  ``drain_timeout``; during the start-up too (a worker still importing the app just ends), and
  the command exits 0.

How connections reach the workers is the ``balance`` setting, see `websuckets.listening.Balance`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from .app import WebSuckets
from .exc import WorkerBootError
from .listening import Balance
from .worker import BACKEND_GAVE_UP, BOOT_FAILED, WorkerConfig, run_worker

logger = logging.getLogger("websuckets.workers")

BOOT_TIMEOUT = 60.0
"""Seconds a worker may take from its start to its first heartbeat (importing the app)."""
STABLE_AFTER = 60.0
"""A worker that served this long resets its slot's restart delay."""
FIRST_DELAY, MAX_DELAY = 0.5, 30.0
KILL_GRACE = 1.0
"""Seconds between a stuck worker's stack dump (SIGUSR1) and its SIGKILL."""


@dataclass
class _Worker:
    """The supervisor's view of one worker process."""

    slot: int
    process: BaseProcess
    pipe: Connection
    started: float
    beat: float | None = None
    ready: float | None = None
    """When it had started the app (it then waits for SIGUSR2 to accept connections)."""
    told: bool = False
    """It was sent SIGUSR2: accept connections."""
    serving: float | None = None
    error: str | None = None
    stuck: bool = False
    kill_at: float | None = None
    buffer: bytes = b""

    @property
    def name(self) -> str:
        return f"worker[{self.slot}] pid {self.process.pid}"


@dataclass
class _Slot:
    worker: _Worker | None = None
    failures: int = 0
    restart_at: float | None = None


class Supervisor:
    """Runs ``workers`` processes serving the app named by ``spec``; see the module's docstring.

    Args:
        spec: the app, as ``MODULE:ATTRIBUTE``; each worker imports it with ``load``.
        workers: how many processes.
        balance: how connections reach them.
        loop: ``"asyncio"`` or ``"uvloop"``.
        log_level: the workers' logging level.
        load: imports the app from its spec (`websuckets.loading.find_app`); pickled by reference.
        settings: app attributes that each worker sets after importing the app (``--origin``...).
        tls: ``(certfile, keyfile)`` to serve ``wss://``.
        worker_timeout: seconds without a heartbeat after which a worker is stuck.
        drain_timeout: seconds a worker has to stop after SIGTERM before SIGKILL.
    """

    def __init__(
        self,
        spec: str,
        workers: int,
        balance: Balance,
        loop: str,
        log_level: str,
        load: Callable[[str], WebSuckets],
        *,
        settings: dict[str, Any] | None = None,
        tls: tuple[str, str | None] | None = None,
        worker_timeout: float = 30.0,
        drain_timeout: float = 25.0,
    ) -> None:
        self.spec = spec
        self.workers = workers
        self.balance = balance
        self.loop = loop
        self.log_level = log_level
        self.load = load
        self.settings = settings or {}
        self.tls = tls
        self.worker_timeout = worker_timeout
        self.drain_timeout = drain_timeout
        self._context = multiprocessing.get_context("spawn")
        self._slots = {slot: _Slot() for slot in range(1, workers + 1)}
        self._signals: list[int] = []
        self._serving = False  # every worker has served: the command printed its address
        self._draining: float | None = None  # when the workers get SIGKILL, once stopping
        self._error: WorkerBootError | None = None

    def address(self, sock: socket.socket) -> str:
        host, port = sock.getsockname()[:2]
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    def run(self, sock: socket.socket) -> None:
        """Serve on ``sock`` (from `listening_socket`, with the same ``balance``) until SIGINT or SIGTERM.

        Then drain every worker and return; raise `WorkerBootError` if the app cannot start.
        """
        self.sock = sock
        # importing the app here made this process's own live gauges (connections 0, backend 0):
        # only the workers serve, so only theirs may count (a 0 here held min(backend) at 0)
        _forget_metrics(os.getpid())
        wake_read, wake_write = socket.socketpair()
        wake_write.setblocking(False)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        previous_fd = signal.set_wakeup_fd(wake_write.fileno(), warn_on_full_buffer=False)
        try:
            self._start(1)
            while self._supervise(wake_read):
                pass
            if self._error is not None:
                raise self._error
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._kill_all()
            wake_read.close()
            wake_write.close()

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    # one turn of the loop

    def _supervise(self, wake: socket.socket) -> bool:
        """Wait for a message, an exit, a signal or a deadline, and act on it; False once every worker is gone."""
        workers = self._live()
        if self._draining is not None and not workers:
            return False
        waitables: list[Connection | socket.socket | int] = [wake]
        waitables += [w.pipe for w in workers] + [w.process.sentinel for w in workers]
        for ready in wait(waitables, timeout=self._next_deadline()):
            if ready is wake:
                with contextlib.suppress(BlockingIOError):
                    wake.recv(4096)
        # signals first: a worker that a SIGTERM to the whole group ended before it was ready
        # is then one that stopped, not one that could not start
        while self._signals:
            self._on_stop(self._signals.pop(0))
        now = time.monotonic()
        for worker in workers:
            self._read(worker, now)
            if worker.process.exitcode is not None:
                self._exited(worker, now)
        self._check(now)
        return True

    def _next_deadline(self) -> float:
        """Seconds until the next thing to check: heartbeats twice a period, restarts, kills, the drain."""
        now = time.monotonic()
        deadlines = [now + min(0.5, self.worker_timeout / 4)]
        deadlines += [s.restart_at for s in self._slots.values() if s.restart_at is not None]
        deadlines += [w.kill_at for w in self._live() if w.kill_at is not None]
        if self._draining is not None:
            deadlines.append(self._draining)
        return max(0.0, min(deadlines) - now)

    def _read(self, worker: _Worker, now: float) -> None:
        """Take the worker's messages: heartbeats, ``ready``, ``serving``, ``boot-failed REASON``."""
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(worker.pipe.fileno(), 65536):
                worker.buffer += chunk
        *lines, worker.buffer = worker.buffer.split(b"\n")
        for line in lines:
            message, _, reason = line.decode(errors="replace").partition(" ")
            worker.beat = now
            if message == "ready" and worker.ready is None:
                worker.ready = now
                self._on_ready()
            elif message == "serving" and worker.serving is None:
                worker.serving = now
                logger.info("%s serving", worker.name)
                self._on_serving()
            elif message == "boot-failed":
                worker.error = reason

    def _on_ready(self) -> None:
        """Start the others once the first worker is ready; tell every ready worker to serve once all are."""
        if self._draining is not None:
            return
        if not self._serving:
            self._start(*(n for n, state in self._slots.items() if state.worker is None and state.restart_at is None))
            if not all(state.worker is not None and state.worker.ready for state in self._slots.values()):
                return  # the port stays closed: the first clients would all go to the ready workers
        for worker in self._live():
            if worker.ready is not None and not worker.told:
                worker.told = True
                _kill(worker.process, signal.SIGUSR2)

    def _on_serving(self) -> None:
        if self._serving or self._draining is not None:
            return
        if all(state.worker is not None and state.worker.serving for state in self._slots.values()):
            self._serving = True
            serving = f"serving on {self.address(self.sock)} with {self.workers} workers"
            print(f"websuckets: {serving} (press Ctrl+C to stop)", flush=True)
            logger.info("%s (balance %s, %s loop)", serving, self.balance.value, self.loop)

    def _exited(self, worker: _Worker, now: float) -> None:
        slot = self._slots[worker.slot]
        slot.worker = None
        worker.pipe.close()
        worker.process.join()
        code = worker.process.exitcode
        assert code is not None
        how = _exit_status(code)
        _forget_metrics(worker.process.pid)
        if self._draining is not None:
            # SIGTERM's default action ends a worker still importing the app: it had nothing to drain
            clean = code == 0 or (code == -signal.SIGTERM and worker.ready is None)
            (logger.info if clean else logger.warning)("%s stopped%s", worker.name, "" if clean else f": {how}")
            return
        if worker.ready is None:  # it never served
            reason = worker.error or ("its event loop sent no heartbeat in time" if worker.stuck else how)
            if not self._serving or not any(w.ready for w in self._live()):
                self._error = WorkerBootError(worker.slot, reason)
                self._stop_all()
                return
            slot.failures += 1
            delay = _delay(slot.failures)
            logger.error("%s could not start: %s; retrying in %.1f s", worker.name, reason, delay)
        else:
            if now - worker.ready >= STABLE_AFTER:
                slot.failures = 0
            slot.failures += 1
            delay = _delay(slot.failures)
            logger.error("%s %s; restarting in %.1f s", worker.name, how, delay)
        slot.restart_at = now + delay

    def _check(self, now: float) -> None:
        """Restarts that are due, workers whose heartbeat stopped, kills that are due, the drain's end."""
        if self._draining is None:
            for number, slot in self._slots.items():
                if slot.restart_at is not None and now >= slot.restart_at:
                    slot.restart_at = None
                    self._start(number)
        for worker in self._live():
            if worker.kill_at is not None and now >= worker.kill_at:
                _kill(worker.process, signal.SIGKILL)
                worker.kill_at = None
            elif not worker.stuck and self._draining is None and self._silent(worker, now):
                worker.stuck = True
                silent = now - (worker.beat or worker.started)
                logger.error(
                    "%s sent no heartbeat for %.1f s: its event loop is blocked; dumping its stack and killing it",
                    worker.name,
                    silent,
                )
                _kill(worker.process, signal.SIGUSR1)  # faulthandler prints every thread's stack, then SIGKILL
                worker.kill_at = now + KILL_GRACE
        if self._draining is not None and now >= self._draining:
            for worker in self._live():
                logger.warning("%s still running %.0f s after SIGTERM: killing it", worker.name, self.drain_timeout)
                _kill(worker.process, signal.SIGKILL)
            self._draining = float("inf")

    def _silent(self, worker: _Worker, now: float) -> bool:
        if worker.beat is None:
            return now - worker.started > max(BOOT_TIMEOUT, self.worker_timeout)
        return now - worker.beat > self.worker_timeout

    # starting and stopping

    def _start(self, *slots: int) -> None:
        for number in slots:
            reader, writer = self._context.Pipe(duplex=False)
            config = WorkerConfig(
                spec=self.spec,
                slot=number,
                loop=self.loop,
                log_level=self.log_level,
                load=self.load,
                settings=self.settings,
                tls=self.tls,
                pipe=writer,
                heartbeat=min(1.0, self.worker_timeout / 4),
                sock=self.sock if self.balance is Balance.SHARED else None,
                address=self.sock.getsockname(),
                family=self.sock.family,
            )
            process = self._context.Process(target=run_worker, args=(config,), name=f"worker[{number}]")
            process.start()
            writer.close()  # the worker holds the write end: its death closes the pipe
            os.set_blocking(reader.fileno(), False)
            self._slots[number].worker = _Worker(number, process, reader, time.monotonic())

    def _on_stop(self, signum: int) -> None:
        if self._draining is None:
            logger.info("%s: stopping %d workers", signal.Signals(signum).name, len(self._live()))
            self._stop_all()
        else:
            logger.warning("%s again: killing the workers now", signal.Signals(signum).name)
            for worker in self._live():
                _kill(worker.process, signal.SIGKILL)

    def _stop_all(self) -> None:
        """SIGTERM to every worker: each runs the app's graceful shutdown; SIGKILL after ``drain_timeout``."""
        self._draining = time.monotonic() + self.drain_timeout
        for slot in self._slots.values():
            slot.restart_at = None
        if self.balance is Balance.SHARED:
            self.sock.close()  # the workers' copies listen until each stops accepting
        for worker in self._live():
            _kill(worker.process, signal.SIGTERM)

    def _kill_all(self) -> None:
        """On the way out, whatever happened: no worker outlives the supervisor."""
        for worker in self._live():
            _kill(worker.process, signal.SIGKILL)
            worker.process.join()
            worker.pipe.close()
            self._slots[worker.slot].worker = None

    def _live(self) -> list[_Worker]:
        return [slot.worker for slot in self._slots.values() if slot.worker is not None]


def _forget_metrics(pid: int | None) -> None:
    """Drop a process's live gauges from ``prometheus_client``'s multi-process directory, if in use."""
    if pid is None or not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    try:
        from prometheus_client import multiprocess
    except ImportError:  # the metrics extra is not installed: nothing writes there
        return
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated


def _delay(failures: int) -> float:
    return float(min(MAX_DELAY, FIRST_DELAY * 2 ** (failures - 1)))


def _exit_status(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    if code == BOOT_FAILED:
        return "failed to start"
    if code == BACKEND_GAVE_UP:
        return f"gave up on its backend (exit code {code})"
    return f"exited with code {code}"


def _kill(process: BaseProcess, sig: signal.Signals) -> None:
    if process.pid is not None and process.exitcode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
