"""The streams benchmark (bench/streams.py) runs end to end; its figures are printed, never asserted."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_short_run_prints_both_rates_their_ratios_and_the_cancel_latency() -> None:
    """A tiny run: a row for 1 client and one for 4, with both servers' items/s and their ratio; both latencies."""
    command = [sys.executable, str(BENCH / "streams.py"), "--items=300", "--clients=4", "--each=50"]
    command += ["--repeat=1", "--cancels=5"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=110, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for clients, items in ((1, 300), (4, 50)):
        row = next(line for line in lines if line.startswith(f"| {clients:7d} | {items:12d} |"))
        ours, raw = (float(cell) for cell in row.split("|")[3:5])
        assert ours > 0
        assert raw > 0
    assert any(line.startswith("ratio websuckets / raw websockets, 4 clients:") for line in lines)
    for name in ("cancel -> finally", "cancel -> end read"):
        assert any(line.startswith(f"| {name} |") for line in lines), name
