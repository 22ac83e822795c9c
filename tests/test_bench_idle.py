"""The idle-connections benchmark (bench/idle.py) runs end to end; its figures are printed, never asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_small_run_measures_both_servers_from_several_client_processes(tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(BENCH / "idle.py"),
        *("--connections", "600", "--per-client", "250", "--window", "1", "--repeat", "1", f"--out={tmp_path}"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "idle.md").read_text().strip() == result.stdout.strip()
    runs = json.loads((tmp_path / "idle.json").read_text())
    assert set(runs) == {"websuckets", "websockets"}
    for (run,) in runs.values():
        assert run["connections"] == 600  # 3 client processes (250, 250, 100), each from its own address
        assert run["rss_after_kib"] > run["rss_before_kib"]
    assert any(line.startswith("target <= 15 KiB per connection") for line in result.stdout.splitlines())
