"""async-kernel Jupyter Server extension: REST endpoints reporting Caller state per kernel.

- `async_kernel_server.AsyncKernelServer`: the extension app and its config
  (``c.AsyncKernelServer.snapshot_timeout``).
- `async_kernel_server.handlers`: the two REST handlers and the error to HTTP status mapping.
- `async_kernel_server.snapshots`: the seam that asks kernels (no HTTP in it).
"""

from __future__ import annotations

from typing import Any

from async_kernel import __version__
from async_kernel_server.app import AsyncKernelServer

__all__ = ["AsyncKernelServer", "__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Tell jupyter_server where the extension app is."""
    return [{"module": "async_kernel_server", "app": AsyncKernelServer}]
