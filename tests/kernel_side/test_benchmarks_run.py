"""The benchmarks still run. Nothing is asserted about their figures (timings never go in the
tests), only that each completes and prints its table: the Caller benchmark, and the kernel
benchmark with the floor kernel beside ours and ipykernel and the ours/floor ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


def _run_quick(script: str, timeout: float) -> str:
    """Run `benchmarks/<script> --quick --rounds 1`; its stdout (it must exit 0)."""
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    return completed.stdout


def test_caller_bench_runs_and_prints_its_table() -> None:
    out = _run_quick("caller_bench.py", timeout=120)
    assert "async-kernel Caller benchmark" in out
    assert "calls/s" in out
    assert "target (from the issue)" in out


@pytest.mark.timeout(300)
def test_kernel_bench_runs_with_the_floor_kernel() -> None:
    out = _run_quick("kernel_bench.py", timeout=280)
    header = next(line for line in out.splitlines() if line.startswith("metric (median of 1)"))
    assert header.split()[4:] == ["floor", "ipykernel", "async", "(asyncio)", "async", "(trio)"]
    for column in ("asyncio/floor", "asyncio/ipyk", "trio/floor", "trio/ipyk"):
        assert column in out
    assert "targets of issue 14 (ours/floor)" in out
    floor_row = next(line for line in out.splitlines() if line.startswith("startup_s"))
    assert "-" not in floor_row.split()[1]  # the floor kernel answered: it has a startup figure
