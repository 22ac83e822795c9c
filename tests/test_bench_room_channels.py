"""The room-channels benchmark (bench/room_channels.py) runs end to end; its figures are printed, never asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_prints_both_designs_for_each_process_count(tmp_path: Path) -> None:
    command = [sys.executable, str(BENCH / "room_channels.py"), "--quick", f"--out={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    for processes in (2, 4):
        for design in ("per-room channels", "one shared channel"):
            assert any(line.startswith(f"| {processes} | {design} |") for line in result.stdout.splitlines())
    assert (tmp_path / "room_channels.md").read_text().strip() == result.stdout.strip()
    records = json.loads((tmp_path / "room_channels.json").read_text())
    assert {(r["processes"], r["mode"]) for r in records} == {
        (p, m) for p in (2, 4) for m in ("per-room channels", "one shared channel")
    }
    assert all(r["delivered_per_s"] > 0 for r in records)
