"""The Caller benchmark still runs (it is not part of the test timings: nothing is asserted
about its figures, only that it completes and prints its table)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "caller_bench.py"


def test_caller_bench_runs_and_prints_its_table() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    assert "async-kernel Caller benchmark" in completed.stdout
    assert "calls/s" in completed.stdout
    assert "target (from the issue)" in completed.stdout
