"""``Metrics``: Prometheus metrics of an app, served at ``/metrics`` on its own port.

::

    from websuckets.metrics import Metrics

    app.add_instrument(Metrics())          # GET /metrics; Metrics(path="/internal/metrics") to move it

It needs the ``metrics`` extra (``pip install 'websuckets[metrics]'``, for ``prometheus_client``).

The per-message path pays for plain integer additions only: the command middleware and the
connection class below add to a `Meter` (ints, lists of ints, no locks, no label look-ups:
each command's counters are found once, when the chain is built). ``prometheus_client`` runs
off that path, through its public API only: a collector registered in `Metrics.registry` reads
the meter when it is scraped, and yields its figures as metric families.

Multi-process mode is ``prometheus_client``'s: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty,
writable directory in the environment of every worker before it starts (before
``prometheus_client`` is imported); ``/metrics`` then serves the sum over the workers (gauges:
the sum of open connections over live workers, the lowest backend state). There, a collector
of one process cannot see the others: each worker moves what its meter gained into
``prometheus_client``'s own counters and gauges every ``sync_interval`` seconds (and before a
scrape), which write it to that directory. ``prometheus_client``'s histogram takes one
observation at a time, so a worker keeps the duration histogram there as two counters (the
observations per bucket, their sum), made one histogram again when ``/metrics`` is scraped.

The metrics (labels in brackets; see the "Observability" guide for queries):

- ``websuckets_connections`` (gauge): open websocket connections;
- ``websuckets_commands_total`` [``event``, ``outcome``: ``ok`` or the error name];
- ``websuckets_command_duration_seconds`` [``event``] (histogram);
- ``websuckets_refused_frames_total`` [``error``]: frames that reached no command
  (``unknown_command``, ``invalid_json``, ``invalid_command``, ``message_too_large``);
- ``websuckets_messages_received_total``, ``websuckets_messages_sent_total``,
  ``websuckets_received_bytes_total``, ``websuckets_sent_bytes_total``;
- ``websuckets_rate_limited_total``, ``websuckets_slow_consumers_closed_total``;
- ``websuckets_streams_total``, ``websuckets_stream_items_total``, ``websuckets_streams_cancelled_total``,
  ``websuckets_streams_refused_total``: streams started, the items they sent, those cancelled, those
  refused before their chain (``too_many_streams``, no ``id`` of their own); a stream that starts is
  also one command in ``websuckets_commands_total``, its duration the whole stream's;
- ``websuckets_backend_connected`` (gauge), ``websuckets_backend_reconnects_total``,
  ``websuckets_backend_failed_operations_total``, ``websuckets_backend_dropped_deliveries_total``,
  ``websuckets_backend_listener_errors_total``, ``websuckets_backend_history_gaps_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from . import delivery, streams
from .context import CallNext, Connection, Context, Middleware
from .exc import InternalError, RateLimited
from .http import is_upgrade, json_response, url_path
from .instrument import Instrument, InstrumentedApp
from .middleware.chain import error_answer
from .middleware.errors import client_error

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from .prometheus import COUNTERS, Figures, FiguresCollector, SharedFigures, every_worker
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError("websuckets.metrics needs prometheus_client: pip install 'websuckets[metrics]'") from exc

if TYPE_CHECKING:
    from .connection import GuardedConnection
    from .routing import Command

__all__ = ["DURATION_BUCKETS", "CommandStats", "Meter", "Metrics"]

DURATION_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""Upper bounds, in seconds, of the command duration histogram: commands are fast, so finer than
``prometheus_client``'s defaults at the low end."""

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class CommandStats:
    """One command's outcomes and durations (plain numbers, only growing: the hot path adds to them)."""

    __slots__ = ("buckets", "outcomes", "seconds")

    def __init__(self, bucket_count: int) -> None:
        self.outcomes: dict[str, int] = {}
        self.buckets = [0] * (bucket_count + 1)
        """Observations per bucket, not cumulative; the last one is over every bound (``+Inf``)."""
        self.seconds = 0.0


class Meter:
    """The counters the data path adds to; they only grow, and are read when metrics are collected."""

    __slots__ = ("bytes_in", "bytes_out", "commands", "messages_out", "refused")

    def __init__(self) -> None:
        self.messages_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.commands: dict[str, CommandStats] = {}
        self.refused: dict[str, int] = {}


class Metrics(Instrument):
    """Count connections, commands, messages and bytes, time commands, and serve it all at ``path``.

    Args:
        path: where ``GET`` gets the metrics in Prometheus's text format; ``None`` to serve nothing
            (read `registry` yourself).
        buckets: the upper bounds of the command duration histogram, in seconds.
        sync_interval: in multi-process mode, seconds between two updates of this worker's figures.
    """

    def __init__(
        self, path: str | None = "/metrics", buckets: Sequence[float] = DURATION_BUCKETS, sync_interval: float = 1.0
    ) -> None:
        self.path = path
        self.bounds = tuple(sorted(float(bound) for bound in buckets))
        self.sync_interval = sync_interval
        self.multiprocess = bool(os.environ.get(MULTIPROCESS_ENV))
        self.meter = Meter()
        self.registry = CollectorRegistry()
        """The registry of this app's metrics (in multi-process mode, of this worker's)."""
        self.registry.register(FiguresCollector(self.figures, self.bounds))
        self.app: InstrumentedApp | None = None
        self._elsewhere: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        """What counters kept elsewhere (deliveries, the backend) gained while this instrument watched."""
        self._seen: dict[str, int] = {}
        self._gauges = {"connections": 0, "backend_connected": 0}
        self._shared = SharedFigures() if self.multiprocess else None
        self._task: asyncio.Task[None] | None = None
        self._fused: set[str] = set()

    # the hot path

    def error_middleware(self, command: Command, error_middleware: Middleware) -> Middleware:
        """With an error middleware that ``answers_errors_with`` a function (the built-in `map_errors`
        does), one step that maps errors and measures: no step of its own."""
        answer = error_answer(error_middleware)
        if answer is None:
            return error_middleware
        record, clock = self._recorder(command), time.perf_counter

        async def measure_and_map_errors(ctx: Context, call_next: CallNext) -> None:
            started = clock()
            try:
                await call_next(ctx)
            except Exception as exc:
                record(_outcome(exc), clock() - started)
                await answer(ctx, exc)
                return
            except BaseException as exc:
                record(_outcome(exc), clock() - started)
                raise
            record("ok", clock() - started)

        self._fused.add(command.name)
        return measure_and_map_errors

    def command_middleware(self, command: Command) -> Middleware | None:
        """Count ``command``'s outcomes and time it, right inside an error middleware it could not fuse with."""
        if command.name in self._fused:  # measured in its error middleware's step, built just before
            self._fused.discard(command.name)
            return None
        record, clock = self._recorder(command), time.perf_counter

        async def measure(ctx: Context, call_next: CallNext) -> None:
            started = clock()
            try:
                await call_next(ctx)
            except BaseException as exc:
                record(_outcome(exc), clock() - started)
                raise
            record("ok", clock() - started)

        return measure

    def _recorder(self, command: Command) -> Callable[[str, float], None]:
        """A function recording one outcome and duration of ``command``; its counters looked up here, once."""
        stats = self.meter.commands.setdefault(command.name, CommandStats(len(self.bounds)))
        outcomes, buckets, bounds = stats.outcomes, stats.buckets, self.bounds

        def record(outcome: str, elapsed: float) -> None:
            stats.seconds += elapsed
            buckets[bisect_left(bounds, elapsed)] += 1
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

        return record

    def connection_class(self, base: type[GuardedConnection]) -> type[GuardedConnection]:
        """``base``, counting bytes in, messages sent and bytes out.

        Messages in are not counted here: each one is a command or a refused frame, counted already.
        Bytes out are counted where ``websockets`` takes them from the connection's protocol
        (its public ``data_to_send``, wrapped on each protocol object: ``websockets`` has no
        other place that sees every byte written, handshake and control frames included).
        """
        meter = self.meter
        base_send, base_data_received = base.send, base.data_received

        class MeteredConnection(base):  # type: ignore[valid-type,misc]  # a class made at run time
            def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
                super().__init__(protocol, *args, **kwargs)
                protocol.data_to_send = _counting_writes(protocol.data_to_send, meter)  # type: ignore[method-assign]

            def send(self, message: Any, *, text: bool | None = None) -> Any:
                meter.messages_out += 1
                return base_send(self, message, text=text)

            def data_received(self, data: bytes) -> None:
                meter.bytes_in += len(data)
                base_data_received(self, data)

        return MeteredConnection

    def frame_refused(self, connection: Connection, error: InternalError) -> None:
        refused = self.meter.refused
        refused[error.name] = refused.get(error.name, 0) + 1

    # off the hot path

    def install(self, app: InstrumentedApp) -> None:
        self.app = app

    async def startup(self, app: InstrumentedApp) -> None:
        self._seen = {}
        self.sync()
        if self.multiprocess:
            self._task = asyncio.get_running_loop().create_task(self._sync_every(self.sync_interval))

    async def shutdown(self, app: InstrumentedApp) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sync()

    async def _sync_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.sync()

    def sync(self) -> None:
        """Read the counters kept elsewhere; in multi-process mode, write this worker's figures for the others."""
        figures = self.figures()
        if self._shared is not None:
            self._shared.write(figures)

    def figures(self) -> Figures:
        """Every figure now, from the meter and the counters kept elsewhere (deliveries, the backend)."""
        self._read_elsewhere()
        gauges = self._gauges
        figures = Figures(dict(self._elsewhere), refused=dict(self.meter.refused))
        figures.connections, figures.backend_connected = gauges["connections"], gauges["backend_connected"]
        counters, received = figures.counters, sum(figures.refused.values())
        for event, stats in list(self.meter.commands.items()):
            if not stats.outcomes:
                continue
            figures.durations[event] = (list(stats.buckets), stats.seconds)
            for outcome, count in list(stats.outcomes.items()):
                figures.commands[event, outcome] = count
                received += count
                if outcome == RateLimited.code:
                    counters["rate_limited"] += count
        meter = self.meter
        counters["messages_received"] += received
        counters["messages_sent"] += meter.messages_out
        counters["received_bytes"] += meter.bytes_in
        counters["sent_bytes"] += meter.bytes_out
        return figures

    def _read_elsewhere(self) -> None:
        stats = delivery.stats
        self._advance("slow_consumers_closed", stats.slow_consumers_closed)
        # fan-outs write past each connection's send: one shared frame, or websockets.broadcast
        self._advance("messages_sent", stats.framed_once + stats.framed_by_connection)
        self._advance("sent_bytes", stats.bytes_framed_once)
        self._advance("streams", streams.stats.started)
        self._advance("stream_items", streams.stats.items)
        self._advance("streams_cancelled", streams.stats.cancelled)
        self._advance("streams_refused", streams.stats.refused)
        app = self.app
        if app is not None and app.started:
            health = app.backend.health
            self._gauges["connections"] = app.dispatcher.open_connections
            self._gauges["backend_connected"] = 1 if health.connected else 0
            self._advance("backend_reconnects", health.reconnects)
            self._advance("backend_failed_operations", health.failed_operations)
            self._advance("backend_dropped_deliveries", health.dropped_deliveries)
            self._advance("backend_listener_errors", health.listener_errors)
            self._advance("backend_history_gaps", health.history_gaps)

    def _advance(self, name: str, total: int) -> None:
        """Add to counter ``name`` what ``total`` (a counter kept elsewhere) gained since it was last read."""
        seen = self._seen.get(name)
        self._seen[name] = total
        if seen is not None and total > seen:
            self._elsewhere[name] += total - seen

    def exposition(self) -> bytes:
        """The metrics in Prometheus's text format: this process's, or every worker's in multi-process mode."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        self.sync()
        registry = CollectorRegistry()
        registry.register(every_worker(self.bounds))
        return generate_latest(registry)

    def http(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.path is None or is_upgrade(request) or url_path(request) != self.path:
            return None
        return json_response(HTTPStatus.OK, self.exposition(), CONTENT_TYPE_LATEST)


def _outcome(exc: BaseException) -> str:
    """A command's outcome for an exception: the error its client was sent, or why it got none."""
    if isinstance(exc, ConnectionClosed):
        return "disconnected"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return client_error(exc).name


def _counting_writes(data_to_send: Callable[[], list[bytes]], meter: Meter) -> Callable[[], list[bytes]]:
    """``data_to_send`` of one protocol object, adding the bytes it hands over to ``meter.bytes_out``."""

    def counted() -> list[bytes]:
        writes = data_to_send()
        if writes:
            meter.bytes_out += sum(map(len, writes))
        return writes

    return counted
