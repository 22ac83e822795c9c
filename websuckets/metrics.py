"""``Metrics``: Prometheus metrics of an app, served at ``/metrics`` on its own port.

::

    from websuckets.metrics import Metrics

    app.add_instrument(Metrics())          # GET /metrics; Metrics(path="/internal/metrics") to move it

It needs the ``metrics`` extra (``pip install 'websuckets[metrics]'``, for ``prometheus_client``).

The per-message path pays for plain integer additions only: the command middleware and the
connection class below add to a `Meter` (ints, lists of ints, no locks, no label look-ups:
each command's counters are found once, when the chain is built). ``prometheus_client``'s own
metrics are brought up to date from the meter off that path: just before each scrape, and, in
multi-process mode, every ``sync_interval`` seconds as well, so that a scrape answered by one
worker sees every worker's figures.

Multi-process mode is ``prometheus_client``'s: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty,
writable directory in the environment of every worker before it starts (before
``prometheus_client`` is imported); ``/metrics`` then serves the sum over the workers (gauges:
the sum of open connections over live workers, the lowest backend state).

The metrics (labels in brackets; see the "Observability" guide for queries):

- ``websuckets_connections`` (gauge): open websocket connections;
- ``websuckets_commands_total`` [``event``, ``outcome``: ``ok`` or the error name];
- ``websuckets_command_duration_seconds`` [``event``] (histogram);
- ``websuckets_refused_frames_total`` [``error``]: frames that reached no command
  (``unknown_command``, ``invalid_json``, ``invalid_command``, ``message_too_large``);
- ``websuckets_messages_received_total``, ``websuckets_messages_sent_total``,
  ``websuckets_received_bytes_total``, ``websuckets_sent_bytes_total``;
- ``websuckets_rate_limited_total``, ``websuckets_slow_consumers_closed_total``;
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

from . import delivery
from .context import CallNext, Context, Middleware
from .exc import InternalError, RateLimited
from .http import is_upgrade, json_response, url_path
from .instrument import Instrument, InstrumentedApp
from .middleware.errors import answer_error, map_errors

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector
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
    """One command's outcomes and durations since the last sync (plain numbers: the hot path)."""

    __slots__ = ("buckets", "outcomes", "seconds")

    def __init__(self, bucket_count: int) -> None:
        self.outcomes: dict[str, int] = {}
        self.buckets = [0] * (bucket_count + 1)
        """Observations per bucket, not cumulative; the last one is over every bound (``+Inf``)."""
        self.seconds = 0.0


class Meter:
    """The counters the data path adds to; `Metrics.sync` moves them into ``prometheus_client``."""

    __slots__ = ("bytes_in", "bytes_out", "commands", "messages_in", "messages_out", "refused")

    def __init__(self) -> None:
        self.messages_in = 0
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
        self.app: InstrumentedApp | None = None
        self._seen: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._protocol_classes: dict[type[ServerProtocol], type[ServerProtocol]] = {}
        self._fused: set[str] = set()
        registry = self.registry
        self.connections = Gauge(
            "websuckets_connections", "Open websocket connections.", registry=registry, multiprocess_mode="livesum"
        )
        self.commands = Counter(
            "websuckets_commands", "Commands handled, by event and outcome.", ["event", "outcome"], registry=registry
        )
        self.duration = Histogram(
            "websuckets_command_duration_seconds",
            "Time from a command's arrival in its chain to the end of its handler.",
            ["event"],
            buckets=self.bounds,
            registry=registry,
        )
        self.refused = Counter(
            "websuckets_refused_frames",
            "Frames answered with an error before reaching a command.",
            ["error"],
            registry=registry,
        )
        self.counters = {
            name: Counter(f"websuckets_{name}", help, registry=registry)
            for name, help in (
                ("messages_received", "Websocket messages received."),
                ("messages_sent", "Websocket messages sent."),
                ("received_bytes", "Bytes received on websocket connections (handshakes included)."),
                ("sent_bytes", "Bytes sent on websocket connections (handshakes included)."),
                ("rate_limited", "Commands refused with rate_limited."),
                ("slow_consumers_closed", "Connections closed for not reading their messages (1013)."),
                ("backend_reconnects", "Times the backend rebuilt its connection after a loss."),
                ("backend_failed_operations", "Backend writes and deliveries that failed."),
                ("backend_dropped_deliveries", "Messages from other processes for clients that had left this one."),
                ("backend_listener_errors", "Messages from the backend that could not be handled."),
                ("backend_history_gaps", "Times messages of a history room were found lost on their way here."),
            )
        }
        self.backend_connected = Gauge(
            "websuckets_backend_connected",
            "1 while the backend answers, else 0.",
            registry=registry,
            multiprocess_mode="livemin",
        )

    # the hot path

    def error_middleware(self, command: Command, error_middleware: Middleware) -> Middleware:
        """With the built-in `map_errors`, one step that maps errors and measures: no step of its own."""
        if error_middleware is not map_errors:
            return error_middleware
        record, clock = self._recorder(command), time.perf_counter

        async def measure_and_map_errors(ctx: Context, call_next: CallNext) -> None:
            started = clock()
            try:
                await call_next(ctx)
            except Exception as exc:
                record(_outcome(exc), clock() - started)
                await answer_error(ctx, exc)
                return
            except BaseException as exc:
                record(_outcome(exc), clock() - started)
                raise
            record("ok", clock() - started)

        self._fused.add(command.name)
        return measure_and_map_errors

    def command_middleware(self, command: Command) -> Middleware | None:
        """Count ``command``'s outcomes and time it, right inside a replaced error middleware."""
        if command.name in self._fused:
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
        """``base``, counting bytes in, and (through its protocol) messages and bytes out.

        Messages in are not counted here: each one is a command or a refused frame, counted already.
        """
        meter, protocols = self.meter, self._protocol_classes
        base_data_received = base.data_received

        class MeteredConnection(base):  # type: ignore[valid-type,misc]  # a class made at run time
            def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
                kind = type(protocol)
                if kind not in protocols:
                    protocols[kind] = _metered_protocol(kind, meter)
                protocol.__class__ = protocols[kind]  # the same object, counting what it sends
                super().__init__(protocol, *args, **kwargs)

            def data_received(self, data: bytes) -> None:
                meter.bytes_in += len(data)
                base_data_received(self, data)

        return MeteredConnection

    # off the hot path

    def install(self, app: InstrumentedApp) -> None:
        self.app = app

    async def startup(self, app: InstrumentedApp) -> None:
        app.dispatcher.refusal_listeners.append(self._count_refusal)
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

    def _count_refusal(self, error: InternalError) -> None:
        refused = self.meter.refused
        refused[error.name] = refused.get(error.name, 0) + 1

    async def _sync_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.sync()

    def sync(self) -> None:
        """Bring ``prometheus_client``'s metrics up to date with the meter and the app's own counters."""
        meter = self.meter
        outcomes_seen: list[dict[str, int]] = []
        for event, stats in meter.commands.items():
            if not stats.outcomes:
                continue
            # emptied in place: the command's middleware holds these very objects
            outcomes = dict(stats.outcomes)
            stats.outcomes.clear()
            counts = list(stats.buckets)
            stats.buckets[:] = [0] * len(counts)
            seconds, stats.seconds = stats.seconds, 0.0
            outcomes_seen.append(outcomes)
            for outcome, count in outcomes.items():
                self.commands.labels(event, outcome).inc(count)
                if outcome == RateLimited.code:
                    self.counters["rate_limited"].inc(count)
            _add_to_histogram(self.duration.labels(event), counts, seconds)
        refused, meter.refused = meter.refused, {}
        for name, count in refused.items():
            self.refused.labels(name).inc(count)
        meter.messages_in += sum(sum(o.values()) for o in outcomes_seen) + sum(refused.values())
        moved = {
            "messages_received": meter.messages_in,
            "messages_sent": meter.messages_out,
            "received_bytes": meter.bytes_in,
            "sent_bytes": meter.bytes_out,
        }
        meter.messages_in = meter.messages_out = meter.bytes_in = meter.bytes_out = 0
        for name, count in moved.items():
            if count:
                self.counters[name].inc(count)
        self._advance("slow_consumers_closed", delivery.stats.slow_consumers_closed)
        # fan-outs write one shared frame past each connection's (counting) protocol object
        self._advance("messages_sent", delivery.stats.framed_once)
        self._advance("sent_bytes", delivery.stats.bytes_framed_once)
        app = self.app
        if app is not None and app.started:
            self.connections.set(app.dispatcher.open_connections)
            health = app.backend.health
            self.backend_connected.set(1 if health.connected else 0)
            self._advance("backend_reconnects", health.reconnects)
            self._advance("backend_failed_operations", health.failed_operations)
            self._advance("backend_dropped_deliveries", health.dropped_deliveries)
            self._advance("backend_listener_errors", health.listener_errors)
            self._advance("backend_history_gaps", health.history_gaps)

    def _advance(self, name: str, total: int) -> None:
        """Add to counter ``name`` what ``total`` (a counter kept elsewhere) gained since the last sync."""
        seen = self._seen.get(name)
        self._seen[name] = total
        if seen is not None and total > seen:
            self.counters[name].inc(total - seen)

    def exposition(self) -> bytes:
        """The metrics in Prometheus's text format: this process's, or every worker's in multi-process mode."""
        self.sync()
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped
        return generate_latest(registry)

    def http(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.path is None or is_upgrade(request) or url_path(request) != self.path:
            return None
        return json_response(HTTPStatus.OK, self.exposition(), CONTENT_TYPE_LATEST)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, InternalError):
        return exc.name
    if isinstance(exc, ConnectionClosed):
        return "disconnected"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return "internal_error"


def _add_to_histogram(child: Histogram, counts: list[int], seconds: float) -> None:
    """Add bucketed observations to a histogram child at once.

    ``prometheus_client`` observes one value at a time; its values (``_sum``, ``_buckets``: one
    per bound, not cumulative) are the documented way its own ``observe`` stores them.
    """
    child._sum.inc(seconds)
    for index, count in enumerate(counts):
        if count:
            child._buckets[index].inc(count)


def _metered_protocol(base: type[ServerProtocol], meter: Meter) -> type[ServerProtocol]:
    """A subclass of ``base`` counting the messages it frames and the bytes it hands to the transport.

    The base methods are bound here, once: no ``super()`` look-up per message.
    """
    send_text, send_binary, send_continuation = base.send_text, base.send_binary, base.send_continuation
    data_to_send = base.data_to_send

    class MeteredProtocol(base):  # type: ignore[valid-type,misc]  # a class made at run time
        def send_text(self, data: Any, fin: bool = True) -> None:
            meter.messages_out += fin
            send_text(self, data, fin)

        def send_binary(self, data: Any, fin: bool = True) -> None:
            meter.messages_out += fin
            send_binary(self, data, fin)

        def send_continuation(self, data: Any, fin: bool) -> None:
            meter.messages_out += fin
            send_continuation(self, data, fin)

        def data_to_send(self) -> list[bytes]:
            writes: list[bytes] = data_to_send(self)
            if writes:
                meter.bytes_out += sum(map(len, writes))
            return writes

    return MeteredProtocol
