"""The kernel benchmark still runs with the floor kernel beside ours and ipykernel. Nothing is
asserted about its figures (timings never go in the tests), only that it completes and prints
the floor column and the ours/floor ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "kernel_bench.py"


@pytest.mark.timeout(300)
def test_kernel_bench_runs_with_the_floor_kernel() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    out = completed.stdout
    header = next(line for line in out.splitlines() if line.startswith("metric (median of 1)"))
    assert header.split()[4:] == ["floor", "ipykernel", "async", "(asyncio)", "async", "(trio)"]
    for column in ("asyncio/floor", "asyncio/ipyk", "trio/floor", "trio/ipyk"):
        assert column in out
    assert "targets of issue 14 (ours/floor)" in out
    floor_row = next(line for line in out.splitlines() if line.startswith("startup_s"))
    assert "-" not in floor_row.split()[1]  # the floor kernel answered: it has a startup figure
