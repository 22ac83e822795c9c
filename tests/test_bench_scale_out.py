"""The scale-out benchmark (bench/scale_out.py) runs end to end; its figures are printed, never asserted."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

ROWS = (
    "| 1,000 msg/s |",
    "| 5,000 msg/s |",
    "| most messages per second |",
    "| K = 64 pairs: messages per second |",  # against the hand-rolled relay and python-socketio
    "| K = 1: p99 ms |",
    "| duplicated or out of order |",
    "| hand-rolled |",
    "| FastAPI (uvicorn) |",
    "| websuckets rooms |",
    "| websuckets rooms, Redis |",
    "| 1,000 | connected |",
    "| 1,000 | signed in, 1 attribute, 1 room |",
    "| SIGKILL, started again empty |",
    "| connections dropped, data kept (reference) |",
    "| client enters Session.online on B → on A |",
)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_prints_every_part(tmp_path: Path) -> None:
    """``--quick`` runs all five parts: the table has a row for each figure and a line for each target."""
    command = [sys.executable, str(BENCH / "scale_out.py"), "--quick", f"--out={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ROWS:
        assert any(line.startswith(row) for line in result.stdout.splitlines()), row
    assert "cross-process p99 at 1,000 msg/s" in result.stdout
    assert "rooms deliveries/s at C=64" in result.stdout
    assert "vs the hand-rolled websockets + redis-py relay" in result.stdout
    assert "vs python-socketio with its Redis manager" in result.stdout
    assert "K = 1 p99:" in result.stdout
    assert "nothing lost, duplicated or out of order:" in result.stdout
    assert (tmp_path / "scale_out.md").read_text().strip() == result.stdout.strip()
    figures = json.loads((tmp_path / "scale_out.json").read_text())
    assert set(figures["results"]) == {"delivery", "freshness", "fanout", "memory", "restart"}


def test_awaited_redis_command_benchmark_prints_both_rows() -> None:
    """bench/redis_call.py --quick: a positive µs figure for redis-py's publish and for the link's awaited
    PUBLISH, each with its ratio, and the overhead line."""
    command = [sys.executable, str(BENCH / "redis_call.py"), "--quick"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    for name in ("redis-py publish", "websuckets link, awaited PUBLISH"):
        row = re.search(rf"^\| {name} \| ([\d.]+) \| [\d., ]+ \| [\d.]+x \|$", result.stdout, re.M)
        assert row is not None, result.stdout
        assert float(row.group(1)) > 0
    assert "the link's overhead per awaited command:" in result.stdout


async def test_the_load_generator_counts_a_message_heard_twice_or_overtaken() -> None:
    """bench/scale_client.py's receiver: each sender's messages carry increasing send times, so one that
    is not newer than the last heard came twice or was overtaken."""
    sys.path.insert(0, str(BENCH))
    try:
        from scale_client import Receiver, Run
    finally:
        sys.path.remove(str(BENCH))
    run = Run()
    receiver = Receiver(run, socketio=False)
    for sent in (100, 200, 200, 150, 300):
        receiver.on_message(b'{"event":"incoming message","payload":{"text":"%d"}}' % sent, now=400)
    assert (run.received, run.disordered) == (5, 2)
