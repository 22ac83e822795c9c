"""The room history benchmark (bench/history.py) runs end to end; its figures are printed, never asserted."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.timeout(60)
def test_smallest_run_prints_every_figure_with_its_reference(tmp_path: Path) -> None:
    """Two resumes of each case and one short fan-out run a server: a row for each, a positive figure in each row."""
    command = [sys.executable, str(BENCH / "history.py"), "--missed=0,5", "--resumes=2", "--concurrency=4"]
    command += ["--warmup=0.1", "--duration=0.2", "--repeat=1", f"--out={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=55, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for backend in ("MemoryBackend", "RedisBackend"):
        for case in ("plain join, room without history (reference)", "join a history room, no resume"):
            assert any(line.startswith(f"| {backend} | {case} | 2 |") for line in lines), (backend, case)
        for missed in (0, 5):
            row = next(line for line in lines if line.startswith(f"| {backend} | resume, {missed} missed | 2 |"))
            p50 = float(row.split("|")[4])
            assert p50 > 0, row
        row = next(line for line in lines if line.startswith(f"| {backend} | 4 |"))
        rates = [int(cell.strip().replace(",", "")) for cell in row.split("|")[3:5]]
        assert all(rate > 0 for rate in rates), row
        assert re.search(rf"^(MET|MISS)  {backend} room fan-out with history at C=4: ", result.stdout, re.M)
    assert (tmp_path / "history.md").read_text().strip() == result.stdout.strip()
    figures = json.loads((tmp_path / "history.json").read_text())
    assert set(figures["results"]) == {"resume", "fanout"}
