"""The topologies benchmark (bench/topologies.py) on real Redis, Sentinel and Cluster servers; figures printed only."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
TOPOLOGIES = ("one Redis, one channel (0.1)", "one Redis", "Sentinel", "Cluster, 3 masters")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_quick_run_measures_every_topology(tmp_path: Path) -> None:
    command = [sys.executable, str(BENCH / "topologies.py"), "--quick", f"--out={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in TOPOLOGIES:
        assert any(line.startswith(f"| {name} |") for line in result.stdout.splitlines()), name
    assert "Cluster: the busiest master does" in result.stdout
    records = json.loads((tmp_path / "topologies.json").read_text())
    assert {record["topology"] for record in records} == set(TOPOLOGIES)
    assert all(record["rate"] > 0 and record["lost"] == 0 for record in records)
    (cluster,) = (record for record in records if record["topology"] == "Cluster, 3 masters")
    assert len(cluster["master_shares"]) == 3
