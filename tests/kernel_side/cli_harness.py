"""Run ``python -m async_kernel ...`` in an isolated Jupyter environment (tests of the CLI).

The fixtures ``prefix``, ``kernels_dir`` and ``cli`` (tests/kernel_side/conftest.py) give each
test its own data, config and IPython dirs and a prefix whose kernelspecs it reads back with
[read_spec][].
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Cli = Callable[..., subprocess.CompletedProcess[str]]
"""``cli("install", "--prefix", ...)``: the finished ``python -m async_kernel`` process."""


def make_cli(tmp_path: Path, prefix: Path) -> Cli:
    """A runner of ``python -m async_kernel`` whose Jupyter dirs are all under `tmp_path`."""
    env = {
        **os.environ,
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_PATH": str(prefix / "share" / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "async_kernel", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def read_spec(kernels_dir: Path, name: str) -> dict[str, Any]:
    """The kernel.json of kernelspec `name` in `kernels_dir`."""
    spec: dict[str, Any] = json.loads((kernels_dir / name / "kernel.json").read_text())
    return spec
