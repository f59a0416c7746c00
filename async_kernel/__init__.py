"""async-kernel: a Jupyter kernel on anyio (asyncio or trio), and the Caller system it runs on.

The public names live here. Importing this package is light: it loads the Caller machinery
(anyio) but not the kernel runtime (IPython, zmq), so server-side code may import
[async_kernel.wire][] without pulling the kernel in.
"""

from async_kernel.caller import Caller, CallerStoppedError
from async_kernel.pending import InvalidStateError, Pending, PendingCancelled, ThreadsafeEvent

__all__ = [
    "Caller",
    "CallerStoppedError",
    "InvalidStateError",
    "Pending",
    "PendingCancelled",
    "ThreadsafeEvent",
    "__version__",
]

__version__ = "0.1.0"
