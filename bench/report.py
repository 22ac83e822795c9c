"""What `bench/run.py` prints: the machine, medians, ratios, the targets, and the plots."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

PACKAGES = ("websockets", "pydantic", "dishka", "picows", "fastapi", "uvicorn", "python-socketio")
MEASURES = ("rate", "p50_ms", "p99_ms", "server_cpu", "client_cpu", "elapsed", "kib", "rss_before_kib", "rss_after_kib")
REFERENCE_C = 64


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = [f"Python {platform.python_version()}"]
    for package in PACKAGES:
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    return f"{model}, {os.cpu_count()} cores, Linux {platform.release()}; " + ", ".join(versions)


class Summary:
    """Medians over repetitions, keyed by (workload, server, connections)."""

    def __init__(self, records: list[dict[str, Any]], labels: dict[str, str]) -> None:
        self.labels = labels
        grouped: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            grouped[record["workload"], record["server"], record["connections"]].append(record)
        self.medians = {
            key: {m: statistics.median(r[m] for r in runs) for m in MEASURES if m in runs[0]}
            for key, runs in grouped.items()
        }
        for key, runs in grouped.items():  # how far apart the repetitions were: (max - min) / median
            if "rate" in runs[0] and self.medians[key]["rate"]:
                rates = [r["rate"] for r in runs]
                self.medians[key]["spread"] = (max(rates) - min(rates)) / self.medians[key]["rate"]

    def has(self, workload: str) -> bool:
        return any(key[0] == workload for key in self.medians)

    def servers(self, workload: str) -> list[str]:
        return list(dict.fromkeys(key[1] for key in self.medians if key[0] == workload))

    def concurrency(self, workload: str) -> list[int]:
        return sorted({key[2] for key in self.medians if key[0] == workload})

    def reference_c(self, workload: str = "command") -> int:
        levels = self.concurrency(workload)
        return REFERENCE_C if REFERENCE_C in levels or not levels else max(levels)

    def get(self, workload: str, server: str, connections: int, measure: str) -> float | None:
        return self.medians.get((workload, server, connections), {}).get(measure)

    def ratio(self, a: tuple[str, str], b: tuple[str, str], connections: int, measure: str = "rate") -> float | None:
        top, bottom = self.get(*a, connections, measure), self.get(*b, connections, measure)
        return top / bottom if top is not None and bottom else None

    def idle(self, server: str) -> dict[str, float] | None:
        found = [value for key, value in self.medians.items() if key[0] == "idle" and key[1] == server]
        return found[0] if found else None


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _rate_table(summary: Summary, workload: str, base: Any, base_name: str) -> list[str]:
    """One row per server: the rate at each concurrency, with its ratio to ``base(server)``."""
    levels = summary.concurrency(workload)
    lines = [
        f"| server | {' | '.join(f'C={c}' for c in levels)} |",
        f"|---|{'---:|' * len(levels)}",
    ]
    for server in summary.servers(workload):
        cells = []
        for c in levels:
            rate = summary.get(workload, server, c, "rate")
            ratio = summary.ratio((workload, server), base(server), c)
            cells.append("n/a" if rate is None else f"{rate:,.0f}" + (f" ({ratio:.2f}x)" if ratio else ""))
        lines.append(f"| {summary.labels[server]} | {' | '.join(cells)} |")
    lines.append(f"\nRatios in brackets: against {base_name} at the same concurrency.")
    return lines


def _latency_table(summary: Summary, workload: str, latency: bool = True) -> list[str]:
    """At the reference concurrency: latency (closed loops only), both sides' CPU, the spread of repetitions."""
    c = summary.reference_c(workload)
    head = "| p50 ms | p99 ms | p99 x hand-rolled " if latency else ""
    lines = [
        f"| server (C={c}) {head}| server CPU | client CPU | spread |",
        f"|---|{'---:|---:|---:|' if latency else ''}---:|---:|---:|",
    ]
    for server in summary.servers(workload):
        m = summary.medians[workload, server, c]
        cells = []
        if latency:
            p99_ratio = summary.ratio((workload, server), (workload, "handrolled"), c, "p99_ms")
            cells += [f"{m['p50_ms']:.2f}", f"{m['p99_ms']:.2f}", _times(p99_ratio)]
        cells += [
            f"{m['server_cpu'] / m['elapsed']:.0%}",
            f"{m['client_cpu'] / m['elapsed']:.0%}",
            f"{m['spread']:.0%}",
        ]
        lines.append(f"| {summary.labels[server]} | {' | '.join(cells)} |")
    lines.append(
        "\nCPU: the share of one core each process used over the measured window (100% = that side saturates)."
        " Spread: (max - min) / median of the rate over the repetitions."
    )
    return lines


def _idle_table(summary: Summary) -> list[str]:
    raw = summary.idle("raw")
    lines = [
        "| server | KiB per connection | - raw websockets | RSS before (KiB) | RSS after (KiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for server in summary.servers("idle"):
        m = summary.idle(server)
        assert m is not None
        extra = f"{m['kib'] - raw['kib']:+.1f}" if raw else "n/a"
        lines.append(
            f"| {summary.labels[server]} | {m['kib']:.1f} | {extra} | {m['rss_before_kib']:,.0f} "
            f"| {m['rss_after_kib']:,.0f} |"
        )
    return lines


STATUSES = ("PASS", "FAIL", "SKIP", "MET", "MISS")
"""The first word of each line of `targets`: a target passed or failed (or was not measured), the aim met or missed."""


def targets(summary: Summary) -> list[str]:
    """The targets as PASS / FAIL lines (SKIP when this run lacks the figures); round 2's aims as MET / MISS."""
    c = summary.reference_c()
    lines = []

    def check(
        name: str, value: float | None, limit: float, at_most: bool = False, unit: str = "x", aim: bool = False
    ) -> None:
        """A target's line (PASS / FAIL), or with ``aim`` an aim's (MET / MISS); SKIP without ``value``."""
        if aim:
            name = f"aim: {name}"
        if value is None:
            lines.append(f"SKIP  {name} (not measured in this run)")
            return
        ok = value <= limit if at_most else value >= limit
        shown = f"{value:+.1f} KiB" if unit == "KiB" else f"{value:.2f}x"
        bound = (
            f"{'≤' if at_most else '≥'} {limit:+.1f} KiB" if unit == "KiB" else f"{'≤' if at_most else '≥'} {limit}x"
        )
        status = ("MET " if ok else "MISS") if aim else ("PASS" if ok else "FAIL")
        lines.append(f"{status}  {name}: {shown} ({'aim' if aim else 'target'} {bound})")

    plain, hand = ("command", "websuckets"), ("command", "handrolled")
    speed, p99 = summary.ratio(plain, hand, c), summary.ratio(plain, hand, c, "p99_ms")
    check(f"websuckets replies/s vs hand-rolled at C={c}", speed, 1.0)
    check(f"websuckets p99 vs hand-rolled at C={c}", p99, 1.05, at_most=True)
    di = summary.ratio(("command", "websuckets_di"), ("command", "handrolled_dishka"), c)
    check(f"websuckets DI vs hand-rolled + dishka at C={c}", di, 1.0)
    container = summary.ratio(("command", "websuckets_container"), plain, c)
    check(f"websuckets + unused container vs websuckets at C={c}", container, 0.97)
    ours, raw = summary.idle("websuckets"), summary.idle("raw")
    check("websuckets idle memory over raw websockets", ours and raw and ours["kib"] - raw["kib"], 2.0, True, "KiB")
    errors = summary.ratio(("errors", "websuckets"), plain, c)
    check(f"websuckets invalid payloads vs valid path at C={c}", errors, 0.8)
    limited = summary.ratio(("command", "websuckets_limited"), plain, c)  # performance round 2's aims:
    check(f"websuckets replies/s vs hand-rolled at C={c}", speed, 1.25, aim=True)
    check(f"websuckets p99 vs hand-rolled at C={c}", p99, 0.9, at_most=True, aim=True)
    check(f"websuckets DI vs hand-rolled + dishka at C={c}", di, 1.1, aim=True)
    check(f"websuckets + rate limit (never reached) vs websuckets at C={c}", limited, 0.97, aim=True)
    return lines


def render(header: dict[str, str], summary: Summary) -> str:
    lines = [
        "## Benchmark results",
        "",
        f"- Command: `{header['command']}` ({header['elapsed']})",
        f"- Machine: {header['machine']}",
        f"- Pinning: {header['pinning']}; 127.0.0.1 only; client: picows, one process",
        f"- Method: {header['method']}",
        f"- {header['trap'][0].upper()}{header['trap'][1:]}",
    ]
    if summary.has("command"):
        lines += ["", "### Command: replies/s (closed loop, one request in flight per connection)", ""]
        lines += _rate_table(summary, "command", lambda server: ("command", "handrolled"), "hand-rolled")
        lines += ["", *_latency_table(summary, "command")]
        lines += ["", "### Command with DI, and an unused container", ""]
        c = summary.reference_c()
        pairs = [
            ("websuckets_di", "handrolled_dishka"),
            ("websuckets_container", "websuckets"),
            ("websuckets_metrics", "websuckets"),
            ("websuckets_tracing", "websuckets"),
            ("handrolled_dishka", "handrolled"),
        ]
        lines += ["| comparison | replies/s ratio | p99 ratio |", "|---|---:|---:|"]
        for top, bottom in pairs:
            if top in summary.labels and summary.get("command", top, c, "rate") is not None:
                rate = summary.ratio(("command", top), ("command", bottom), c)
                p99 = summary.ratio(("command", top), ("command", bottom), c, "p99_ms")
                label = f"{summary.labels[top]} / {summary.labels[bottom]} (C={c})"
                lines.append(f"| {label} | {_times(rate)} | {_times(p99)} |")
    if summary.has("errors"):
        lines += ["", "### Errors: replies/s when every payload is invalid (`validation_error`)", ""]
        lines += _rate_table(summary, "errors", lambda server: ("command", server), "the same server's valid path")
        lines += ["", *_latency_table(summary, "errors")]
    if summary.has("fanout"):
        lines += ["", "### Fan-out: deliveries/s (one sender, C receivers, every message to every receiver)", ""]
        lines += _rate_table(summary, "fanout", lambda server: ("fanout", "handrolled"), "hand-rolled")
        lines += ["", *_latency_table(summary, "fanout", latency=False)]
    if summary.has("idle"):
        lines += ["", "### Idle: server memory per idle connection (VmRSS growth)", ""]
        lines += _idle_table(summary)
    lines += ["", "### Targets", "", "```", *targets(summary), "```", ""]
    return "\n".join(lines)


PLOTS = (
    ("performance-replies.png", "command", "rate", "Command: replies per second", "replies/s"),
    ("performance-p99.png", "command", "p99_ms", "Command: p99 latency", "p99 latency (ms, log scale)"),
    ("performance-fanout.png", "fanout", "rate", "Fan-out: deliveries per second", "deliveries/s"),
)
"""One PNG each: (file name, workload, measure, title, y label)."""


def write_plots(summary: Summary, directory: Path) -> list[Path]:
    """One figure per plot, each against concurrency with a line per server, as PNGs in ``directory``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {server: palette[index % len(palette)] for index, server in enumerate(summary.labels)}
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, workload, measure, title, unit in PLOTS:
        if not summary.has(workload):
            continue
        levels = summary.concurrency(workload)
        with plt.rc_context({"font.size": 13}):
            figure, axis = plt.subplots(figsize=(10, 5.6), layout="constrained")
            for server in summary.servers(workload):
                ours = server.startswith("websuckets")
                axis.plot(
                    levels,
                    [summary.get(workload, server, c, measure) for c in levels],
                    marker="o",
                    markersize=7 if ours else 5,
                    color=colors[server],
                    linewidth=3 if ours else 1.6,
                    linestyle="-" if ours else "--",
                    label=summary.labels[server],
                )
            axis.set_xscale("log", base=2)
            axis.set_xticks(levels, [str(c) for c in levels])
            axis.set_xlabel("concurrent connections")
            axis.set_ylabel(unit)
            axis.set_title(title, fontsize=15)
            axis.grid(True, alpha=0.3)
            if measure == "p99_ms":
                axis.set_yscale("log")
                axis.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:g}"))
            else:
                axis.set_ylim(bottom=0)
                axis.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
            axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
            path = directory / name
            figure.savefig(path, dpi=100)
            plt.close(figure)
        written.append(path)
    return written
