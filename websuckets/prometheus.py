"""The figures of `websuckets.metrics.Metrics` as Prometheus sees them, through ``prometheus_client``'s public API.

`Figures` are every figure of an app at one moment, in plain numbers. `FiguresCollector` yields
them as metric families each time a registry is collected: nothing of ``prometheus_client``
runs before a scrape. In multi-process mode a worker's collector cannot see the others', so
`SharedFigures` adds what the figures gained to ``prometheus_client``'s own counters and gauges,
which write them to ``PROMETHEUS_MULTIPROC_DIR``, and `every_worker` reads them all back.
``prometheus_client``'s histogram takes one observation at a time (its public API has no way to
add many at once), so the duration histogram travels between processes as two counters (the
observations per bucket, their sum) and `every_worker` makes it a histogram again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

DURATION = "websuckets_command_duration_seconds"
_IN_BUCKET = f"{DURATION}_in_bucket"
_SUMMED = f"{DURATION}_summed"
"""The two counters that carry the duration histogram between processes in multi-process mode."""

HELP = {
    "connections": "Open websocket connections.",
    "commands": "Commands handled, by event and outcome.",
    "duration": "Time from a command's arrival in its chain to the end of its handler.",
    "refused_frames": "Frames answered with an error before reaching a command.",
    "backend_connected": "1 while the backend answers, else 0.",
}
COUNTERS = {
    "messages_received": "Websocket messages received.",
    "messages_sent": "Websocket messages sent.",
    "received_bytes": "Bytes received on websocket connections (handshakes included).",
    "sent_bytes": "Bytes sent on websocket connections (handshakes included).",
    "rate_limited": "Commands refused with rate_limited.",
    "slow_consumers_closed": "Connections closed for not reading their messages (1013).",
    "streams": "Streams started (commands whose handler is an async generator).",
    "stream_items": "Items sent by streams.",
    "streams_cancelled": "Streams cancelled by their client (websuckets cancel) or its disconnect.",
    "streams_refused": "Streams refused before they started: too_many_streams, or no id of their own.",
    "backend_reconnects": "Times the backend rebuilt its connection after a loss.",
    "backend_failed_operations": "Backend writes and deliveries that failed.",
    "backend_dropped_deliveries": "Messages from other processes for clients that had left this one.",
    "backend_listener_errors": "Messages from the backend that could not be handled.",
    "backend_history_gaps": "Times messages of a history room were found lost on their way here.",
}
"""The plain counters (``websuckets_<name>_total``), with their help."""


@dataclass
class Figures:
    """Every figure of an app at one moment: what a scrape shows."""

    counters: dict[str, float] = field(default_factory=dict)
    commands: dict[tuple[str, str], int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    durations: dict[str, tuple[list[int], float]] = field(default_factory=dict)
    """Per event: the observations per bucket (not cumulative), and their sum in seconds."""
    connections: int = 0
    backend_connected: int = 0


def families(figures: Figures, bounds: Sequence[float]) -> Iterator[Metric]:
    """``figures`` as ``prometheus_client`` metric families; ``bounds``: the duration histogram's."""
    yield GaugeMetricFamily("websuckets_connections", HELP["connections"], value=figures.connections)
    commands = CounterMetricFamily("websuckets_commands", HELP["commands"], labels=["event", "outcome"])
    for (event, outcome), count in figures.commands.items():
        commands.add_metric([event, outcome], count)
    yield commands
    duration = HistogramMetricFamily(DURATION, HELP["duration"], labels=["event"])
    for event, (counts, seconds) in figures.durations.items():
        labels = map(_le, (*bounds, None))
        duration.add_metric([event], _cumulative(zip(labels, counts, strict=True)), seconds)
    yield duration
    refused = CounterMetricFamily("websuckets_refused_frames", HELP["refused_frames"], labels=["error"])
    for name, count in figures.refused.items():
        refused.add_metric([name], count)
    yield refused
    for name, help in COUNTERS.items():
        yield CounterMetricFamily(f"websuckets_{name}", help, value=figures.counters[name])
    yield GaugeMetricFamily("websuckets_backend_connected", HELP["backend_connected"], figures.backend_connected)


class FiguresCollector(Collector):
    """A collector yielding the figures that ``read`` returns each time it is collected (scraped)."""

    def __init__(self, read: Callable[[], Figures], bounds: Sequence[float]) -> None:
        self.read = read
        self.bounds = bounds

    def collect(self) -> Iterator[Metric]:
        return families(self.read(), self.bounds)


class SharedFigures:
    """A worker's figures in ``prometheus_client``'s own metrics, which multi-process mode writes to its directory.

    Only what the figures gained since the last write is added: counters only grow.
    """

    def __init__(self) -> None:
        registry = None  # written to the directory, read back by MultiProcessCollector: in no registry
        self.connections = Gauge(
            "websuckets_connections", HELP["connections"], registry=registry, multiprocess_mode="livesum"
        )
        self.backend_connected = Gauge(
            "websuckets_backend_connected", HELP["backend_connected"], registry=registry, multiprocess_mode="livemin"
        )
        self.commands = Counter("websuckets_commands", HELP["commands"], ["event", "outcome"], registry=registry)
        self.refused = Counter("websuckets_refused_frames", HELP["refused_frames"], ["error"], registry=registry)
        self.in_bucket = Counter(_IN_BUCKET, HELP["duration"], ["event", "bucket"], registry=registry)
        self.summed = Counter(_SUMMED, HELP["duration"], ["event"], registry=registry)
        self.counters = {
            name: Counter(f"websuckets_{name}", help, registry=registry) for name, help in COUNTERS.items()
        }
        self.written = Figures()

    def write(self, figures: Figures) -> None:
        before, self.written = self.written, figures
        self.connections.set(figures.connections)
        self.backend_connected.set(figures.backend_connected)
        for name, value in figures.counters.items():
            _add(self.counters[name], value - before.counters.get(name, 0))
        for (event, outcome), count in figures.commands.items():
            _add(self.commands.labels(event, outcome), count - before.commands.get((event, outcome), 0))
        for error, count in figures.refused.items():
            _add(self.refused.labels(error), count - before.refused.get(error, 0))
        for event, (counts, seconds) in figures.durations.items():
            counts_before, seconds_before = before.durations.get(event, ([0] * len(counts), 0.0))
            _add(self.summed.labels(event), seconds - seconds_before)
            for index, count in enumerate(counts):
                _add(self.in_bucket.labels(event, str(index)), count - counts_before[index])


def _add(counter: Counter, gain: float) -> None:
    if gain > 0:
        counter.inc(gain)


def every_worker(bounds: Sequence[float]) -> Collector:
    """In multi-process mode, a collector of every worker's figures (as each last wrote them)."""
    source = MultiProcessCollector(None)  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped
    return _WithHistogram(source, bounds)


class _WithHistogram(Collector):
    """Every worker's metrics, the duration histogram made one again from the two counters that carry it."""

    def __init__(self, source: Collector, bounds: Sequence[float]) -> None:
        self.source = source
        self.labels = [_le(bound) for bound in (*bounds, None)]

    def collect(self) -> Iterator[Metric]:
        in_bucket: dict[str, dict[int, float]] = {}
        summed: dict[str, float] = {}
        for family in self.source.collect():
            if family.name == _IN_BUCKET:
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        counts = in_bucket.setdefault(sample.labels["event"], {})
                        counts[int(sample.labels["bucket"])] = sample.value
            elif family.name == _SUMMED:
                summed.update((s.labels["event"], s.value) for s in family.samples if s.name.endswith("_total"))
            else:
                yield family
        duration = HistogramMetricFamily(DURATION, HELP["duration"], labels=["event"])
        for event, counts in in_bucket.items():
            per_bucket = [counts.get(index, 0.0) for index in range(len(self.labels))]
            duration.add_metric([event], _cumulative(zip(self.labels, per_bucket, strict=True)), summed.get(event, 0.0))
        yield duration


def _le(bound: float | None) -> str:
    """A bucket's ``le`` label: its bound as ``prometheus_client`` writes it, ``+Inf`` for the last."""
    return "+Inf" if bound is None else repr(float(bound))


def _cumulative(buckets: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """Observations per bucket, as a histogram's buckets: each counts those of the buckets below it too."""
    total, cumulative = 0.0, []
    for label, count in buckets:
        total += count
        cumulative.append((label, total))
    return cumulative
