"""The wire formats benchmark (bench/formats.py) runs end to end; its figures are printed, never asserted."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_short_run_prints_both_formats_for_both_workloads_and_their_ratios() -> None:
    """A tiny run: replies/s and bytes for JSON and MessagePack, commands and fan-out, then the ratios."""
    command = [sys.executable, str(BENCH / "formats.py"), "--clients=4", "--messages=30", "--broadcasts=30"]
    command += ["--repeat=1", "--codecs"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=110, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for workload in ("command", "fan-out"):
        for name in ("JSON", "MessagePack"):
            row = next(line for line in lines if line.startswith(f"| {workload} | {name} |"))
            rate, size = (float(cell) for cell in row.split("|")[3:5])
            assert rate > 0
            assert size > 0
        assert any(line.startswith(f"ratio MessagePack / JSON, {workload} at C=4:") for line in lines)
    assert any(line.startswith("| ormsgpack (pydantic natively) |") for line in lines)
