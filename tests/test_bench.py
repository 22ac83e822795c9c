"""The benchmarks still run (their figures are printed, never asserted)."""

import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PLOTS = ("performance-replies.png", "performance-p99.png", "performance-fanout.png")
STATUSES = ("PASS", "FAIL", "SKIP", "MET", "MISS")


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG, from its IHDR chunk."""
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


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


@pytest.mark.parametrize("row", ["reply", "send", "limited", "hand-rolled", "di", "hand-rolled-dishka"])
def test_instruction_benchmark_rows_run(row: str) -> None:
    """Each row that bench/instructions.py has valgrind count runs on its own (natively here: the count
    itself needs valgrind and a minute a row, so it is run by hand, as the Performance page says)."""
    command = [sys.executable, str(BENCH / "instructions.py"), "--run", row, "--messages", "50"]
    subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)


def test_each_server_whose_instructions_are_counted_answers_its_load() -> None:
    """bench/server_instructions.py's servers, started as it starts them (natively here: valgrind counts
    for minutes), answer every request of its load and stop on SIGTERM."""
    command = [
        sys.executable,
        str(BENCH / "server_instructions.py"),
        "--check",
        "--connections",
        "4",
        "--messages",
        "5",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.count("answered 4 x 5") == 5, result.stdout


def test_close_benchmark_runs_and_prints_a_ratio() -> None:
    """A short run of bench/close.py prints both times to close and their ratio."""
    command = [sys.executable, str(BENCH / "close.py"), "--repeat", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert "| idle, closed by its command | 1008 |" in result.stdout
    assert "| flood, closed by the rate limit | 1008 |" in result.stdout
    assert "ratio flood / idle:" in result.stdout


def test_the_committed_results_render_from_their_figures_as_the_docs_show(tmp_path: Path) -> None:
    """`--from latest.json` gives the committed table; one readable plot a file; the statuses the docs name."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--from", str(BENCH / "results" / "latest.json"), f"--out={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    table = (tmp_path / "latest.md").read_text()
    assert table == (BENCH / "results" / "latest.md").read_text()  # the committed table is today's rendering
    assert re.search(r"issue \d", table, re.IGNORECASE) is None  # no tracker numbers
    targets = table.split("### Targets", 1)[1]
    statuses = re.findall(r"^([A-Z]+)\s", targets, re.MULTILINE)
    assert statuses
    assert set(statuses) <= set(STATUSES), statuses
    page = (ROOT / "docs" / "performance.md").read_text()
    assert all(f"`{status}`" in page for status in STATUSES)
    assert re.search(r"issue \d", page, re.IGNORECASE) is None
    for name in PLOTS:
        assert f"](img/{name})" in page
        width, height = png_size(tmp_path / name)
        assert width >= 900
        assert height >= 500
        assert (ROOT / "docs" / "img" / name).is_file()
    assert result.stdout.strip() == table.strip()
