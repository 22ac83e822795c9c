"""The benchmarks still run (their figures are printed, never asserted)."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_dispatch_benchmark_runs_and_prints_a_ratio() -> None:
    """A tiny run of bench/dispatch.py prints both figures and their ratio."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "dispatch.py"), "--messages", "200", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "| websuckets  |" in result.stdout
    assert "| hand-rolled |" in result.stdout
    assert "ratio websuckets / hand-rolled:" in result.stdout
