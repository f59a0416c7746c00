"""async-kernel: a Jupyter kernel on anyio (asyncio or trio), and the Caller system it runs on.

The public API of the Caller library is the names below (``from async_kernel import Caller``);
[async_kernel.wire][] is the public wire contract between a kernel and the server side, and
`async_kernel.kernelspec` / the `async-kernel` command install kernelspecs. Modules whose names
start with an underscore are internals: `async_kernel._caller` (the parts behind `Caller`) and
`async_kernel._kernel` (the kernel process).

Importing this package loads nothing: each public name is imported on first use, so that
``import async_kernel.wire`` (what the server side does) does not load the Caller machinery,
anyio, IPython or zmq.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from async_kernel._version import __version__

if TYPE_CHECKING:
    from async_kernel.caller import Caller, CallerStoppedError
    from async_kernel.pending import (
        InvalidStateError,
        Pending,
        PendingCancelled,
        ThreadsafeEvent,
    )

__all__ = [
    "Caller",
    "CallerStoppedError",
    "InvalidStateError",
    "Pending",
    "PendingCancelled",
    "ThreadsafeEvent",
    "__version__",
]

_WHERE: dict[str, str] = {
    "Caller": "async_kernel.caller",
    "CallerStoppedError": "async_kernel.caller",
    "InvalidStateError": "async_kernel.pending",
    "Pending": "async_kernel.pending",
    "PendingCancelled": "async_kernel.pending",
    "ThreadsafeEvent": "async_kernel.pending",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562); later lookups find it in the module."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'async_kernel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
