"""async-kernel Jupyter Server extension: REST endpoints reporting Caller state per kernel.

- `async_kernel_server.AsyncKernelServer`: the extension app and its config
  (``c.AsyncKernelServer.snapshot_timeout``).
- `async_kernel_server.handlers`: the two REST handlers and the error to HTTP status mapping.
- `async_kernel_server.snapshots`: the seam that asks kernels (no HTTP in it).

Importing this package loads nothing but the version: jupyter_server finds the extension app
through `_jupyter_server_extension_points()` when it loads extensions, and
``async_kernel_server.AsyncKernelServer`` is imported on first use. The server side never loads
the kernel, the Caller machinery or IPython; it shares only `async_kernel.wire` with the kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from async_kernel._version import __version__

if TYPE_CHECKING:
    from async_kernel_server.app import AsyncKernelServer

__all__ = ["AsyncKernelServer", "__version__"]


def __getattr__(name: str) -> Any:
    """``AsyncKernelServer`` on first use (PEP 562)."""
    if name == "AsyncKernelServer":
        from async_kernel_server.app import AsyncKernelServer

        globals()[name] = AsyncKernelServer
        return AsyncKernelServer
    raise AttributeError(f"module 'async_kernel_server' has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Tell jupyter_server where the extension app is (imported only now)."""
    from async_kernel_server.app import AsyncKernelServer

    return [{"module": "async_kernel_server", "app": AsyncKernelServer}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the built JupyterLab extension is, for ``jupyter labextension develop``.

    ``src`` is relative to this package: the build output of ``labextension/`` (see
    ``build_backend/async_kernel_build.py``); wheels install it as
    ``share/jupyter/labextensions/async-kernel``.
    """
    return [{"src": "labextension", "dest": "async-kernel"}]
