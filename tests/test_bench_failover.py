"""The failover benchmark (bench/failover.py) runs on real sentinels; its figures are printed, never asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_one_failover_and_one_kill_are_measured(tmp_path: Path) -> None:
    command = [sys.executable, str(BENCH / "failover.py"), "--failovers=1", "--kills=1", f"--out={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(line.startswith("| SENTINEL FAILOVER | 1 |") for line in result.stdout.splitlines())
    assert any(line.startswith("| master killed (SIGKILL) | 1 |") for line in result.stdout.splitlines())
    assert "no acknowledged broadcast lost outside the outage window" in result.stdout
    records = json.loads((tmp_path / "failover.json").read_text())
    assert [record["kind"] for record in records] == ["failover", "kill"]
    assert all(record["broadcasts"] > 0 for record in records)
