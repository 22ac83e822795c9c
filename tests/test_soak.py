"""Soak and abuse runs (bench/soak.py): the invariants behind its figures, never its timings.

Slow: run with ``pytest -m slow tests/test_soak.py -s`` to see the figures too.
"""

from __future__ import annotations

import importlib.util
import resource
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

BENCH = Path(__file__).resolve().parent.parent / "bench"


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_soak", BENCH / "soak.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_soak"] = module
    spec.loader.exec_module(module)
    return module


soak = load_soak()


def show(name: str, figures: dict[str, Any]) -> None:
    soak.show(name, figures)


LIVE_BEFORE: list[int] = [0]
"""websuckets objects alive before the current test: what earlier tests in this process left (not ours to judge)."""


@pytest.fixture(autouse=True)
def count_live_objects_before() -> None:
    LIVE_BEFORE[0] = soak.live_objects()[0]


def assert_nothing_left(figures: dict[str, Any], before: dict[str, Any] | None = None) -> None:
    """No client online or served, no scope open, no more websuckets objects alive than before the
    test; fds and tasks as before."""
    after = figures["after"]
    assert (after["online"], after["serving"], after["open_scopes"]) == (0, 0, 0)
    assert after["live_objects"] <= LIVE_BEFORE[0], "websuckets objects left alive by this run"
    if before is not None:
        assert (after["fds"], after["tasks"]) == (before["fds"], before["tasks"])


async def test_ten_thousand_clients_come_and_go_and_leave_nothing_behind() -> None:
    """10,000 connect/command/disconnect cycles: every scope closed; fds, tasks and objects back to baseline."""
    figures = await soak.cycles(10_000)
    show("cycles", figures)
    assert_nothing_left(figures, figures["before"])
    assert figures["scopes_opened"] == figures["scopes_closed"]
    assert figures["scopes_opened"]["request"] == 10_000 + 500  # one per command, warm-up included
    assert figures["gc_objects_growth"] <= 100, "objects kept by 10,000 cycles"


async def test_five_thousand_idle_connections_are_all_served_then_all_released() -> None:
    """5,000 idle connections from another process, compression off (the default) and on: all online, then gone."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 5_000
    if soft < wanted + 500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20_000), hard))
    count = min(wanted, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 500)
    for compression in (None, "deflate"):
        figures = await soak.idle(count, compression)
        show(f"idle, compression {compression or 'off'}", figures)
        assert figures["online_while_open"] == count
        assert_nothing_left(figures)
        assert figures["after"]["fds"] == figures["before"]["fds"]


async def test_the_cap_refuses_what_is_over_it_even_while_handshakes_wait() -> None:
    """More handshakes at once than max_connections, with and without a slow check: exactly the cap is served."""
    for options in ({"limit": 200, "attempts": 300}, {"limit": 50, "attempts": 100, "slow_auth": 0.05}):
        figures = await soak.cap(**options)
        show("cap", figures)
        assert (figures["accepted"], figures["refused_503"]) == (
            options["limit"],
            options["attempts"] - options["limit"],
        )
        assert figures["serving_at_peak"] == options["limit"]
        assert figures["accepted_after_close"]


async def test_slow_readers_are_closed_with_1013_and_delay_nobody() -> None:
    """Clients that never read what they asked for are closed with 1013; another client is answered throughout."""
    figures = await soak.slow_readers(count=20, send_timeout=1.0)
    show("slow readers", figures)
    assert figures["closed_with_1013"] == 20
    assert figures["all_gone_after_s"] is not None
    assert figures["normal_requests"] >= 100
    assert_nothing_left(figures)


async def test_a_silent_peer_leaves_once_its_ping_times_out() -> None:
    """A peer that answers nothing leaves Session.online and its SESSION scope closes (figure: how soon)."""
    figures = await soak.silent_peer(ping_interval=0.5, ping_timeout=0.5)
    show("silent peer", figures)
    assert figures["session_scopes_closed"] == 1
    assert_nothing_left(figures)


@pytest.mark.parametrize(("kind", "status"), [("origin", "403"), ("auth", "401")])
async def test_refused_handshakes_keep_nothing(kind: str, status: str) -> None:
    """1,000 handshakes from a foreign origin, or with unknown tokens: every one refused, nothing kept."""
    figures = await soak.refused_handshakes(kind, 1_000)
    show(f"refused: {kind}", figures)
    assert figures["statuses"] == {status: 1_000}
    assert figures["sessions_opened"] == 0
    assert_nothing_left(figures, figures["before"])


async def test_deep_nesting_and_oversize_frames_get_errors_never_a_crash() -> None:
    """100,000 nested arrays and objects: invalid_json; over the size limit: message_too_large; then it goes on."""
    figures = await soak.hostile_frames(100_000)
    show("hostile frames", figures)
    assert figures["replies"] == {
        "nested_arrays": "invalid_json",
        "nested_arrays_then": "echo",
        "nested_payload": "invalid_json",
        "nested_payload_then": "echo",
        "over_size_limit": "message_too_large",
        "over_size_limit_then": "echo",
        "over_four_times": 1009,
    }
    assert_nothing_left(figures)
