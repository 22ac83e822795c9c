"""The benchmark suite (bench/run.py) runs end to end; its figures are printed, never asserted."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.slow
def test_smallest_run_prints_a_table_of_positive_figures(tmp_path: Path) -> None:
    """One workload, two servers, two short runs: the table has a positive rate in every cell, and a plot."""
    command = [sys.executable, str(BENCH / "run.py"), "--workloads=command", "--servers=handrolled,websuckets"]
    command += ["--concurrency=1,4", "--warmup=0.2", "--duration=0.4", "--repeat=1", f"--out={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| hand-rolled |", "| websuckets |"))]
    rates = [row.split("|")[2:4] for row in rows[:2]]  # the replies/s table comes first: C=1, C=4
    assert len(rates) == 2
    for cells in rates:
        for cell in cells:
            match = re.match(r"\s*([\d,]+)", cell)
            assert match is not None, cell
            assert int(match.group(1).replace(",", "")) > 0
    assert "websuckets replies/s vs hand-rolled at C=4" in result.stdout
    assert (tmp_path / "latest.md").read_text().strip() == result.stdout.strip()
    assert (tmp_path / "performance-replies.png").stat().st_size > 0
    assert (tmp_path / "performance-p99.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.timeout(300)  # about 50 s on an idle 2-core machine; over 60 s beside the rest of CI
def test_workers_benchmark_prints_its_three_tables(tmp_path: Path) -> None:
    """bench/workers.py, at its smallest: the spread, under-load and replies/s tables, with a figure in each row."""
    command = [sys.executable, str(BENCH / "workers.py"), "--quick", "--connections=20", "--spread-workers=2"]
    command += ["--load-connections=8", "--concurrency=4", "--warmup=0.2", "--duration=0.3"]
    command += [f"--out={tmp_path / 'w.md'}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False)
    assert result.returncode == 0, result.stderr
    row = r"^\| (?:shared|reuse-port) \| 2 \| (?:burst|trickle) \| \d+/\d+ \d+/\d+ \|"
    spread = re.findall(row, result.stdout, re.M)
    assert len(spread) == 4  # per balance and arrival: two repetitions, a count for each worker
    rates = re.findall(r"^\| [12] \| (?:asyncio|uvloop) \| [-a-z]+ \| \d+ \| ([\d,]+) \|", result.stdout, re.M)
    assert len(rates) == 2 + 4  # under load: one per --balance; replies/s: 1 and 2 workers x 2 loops
    assert all(int(rate.replace(",", "")) > 0 for rate in rates)
    assert (tmp_path / "w.md").read_text().strip() == result.stdout.strip()
