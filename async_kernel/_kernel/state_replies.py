"""The content of the replies that describe the kernel: `kernel_info_reply`, `caller_state_reply`
and ipykernel-compatible `usage_reply`.

`caller_state_reply` is built in the control thread from counters that other threads update,
without waiting for any of them, so a snapshot answers within milliseconds even while user code
blocks the shell thread. `kernel_info_reply` is the same for the kernel's life: the kernel builds
it once, in the thread of the first request (ShellChannel or ControlThread).
"""

from __future__ import annotations

import os
import platform
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from async_kernel import __version__
from async_kernel.caller import Caller
from async_kernel.wire import (
    CALLER_STATE_FEATURE,
    CALLER_STATE_VERSION,
    PROTOCOL_VERSION,
    Backend,
    CallerStateReply,
    ShellQueueRow,
    UsageReply,
    format_time,
)

__all__ = ["ShellQueueStats", "caller_state_content", "kernel_info_content", "usage_content"]


@dataclass
class ShellQueueStats:
    """Counters of one kind of shell request queued on the shell thread (updated lock-free)."""

    msg_type: str
    subshell_id: str | None = None
    pending: int = 0
    running_since: float | None = field(default=None)

    def row(self, now: float) -> ShellQueueRow:
        since = self.running_since
        return {
            "msg_type": self.msg_type,
            "subshell_id": self.subshell_id,
            "pending": self.pending,
            "running": since is not None,
            "running_for": None if since is None else round(now - since, 6),
        }


def caller_state_content(
    *,
    backend: Backend,
    started: float,
    execution_count: int,
    queues: list[ShellQueueStats],
) -> CallerStateReply:
    """The `caller_state_reply` content of the [wire contract][async_kernel.wire]."""
    now = time.monotonic()
    callers = Caller.all_callers(running_only=False)
    return {
        "status": "ok",
        "version": CALLER_STATE_VERSION,
        "pid": os.getpid(),
        "backend": backend,
        "started": format_time(started),
        "execution_count": execution_count,
        "shell": {"queues": [q.row(now) for q in queues]},
        "callers": [c.snapshot() for c in callers],
    }


def kernel_info_content(*, banner: str, backend: Backend) -> dict[str, Any]:
    """The `kernel_info_reply` content: the language, the protocol and what the kernel offers."""
    return {
        "status": "ok",
        "protocol_version": PROTOCOL_VERSION,
        "implementation": "async_kernel",
        "implementation_version": __version__,
        "language_info": {
            "name": "python",
            "version": platform.python_version(),
            "mimetype": "text/x-python",
            "codemirror_mode": {"name": "ipython", "version": 3},
            "pygments_lexer": "ipython3",
            "nbconvert_exporter": "python",
            "file_extension": ".py",
        },
        "banner": banner,
        "help_links": [
            {"text": "Python Reference", "url": "https://docs.python.org/3/"},
            {"text": "IPython Reference", "url": "https://ipython.readthedocs.io/"},
            {"text": "async-kernel", "url": "https://pypi.org/project/async-kernel/"},
        ],
        "debugger": False,
        "supported_features": [CALLER_STATE_FEATURE],
        "async_kernel": {"backend": backend},
    }


_process: Any = None  # psutil.Process, made on the first usage_request


def usage_content() -> UsageReply:
    """ipykernel-compatible `usage_reply` content (what jupyter-resource-usage reads).

    psutil is imported here, on first use, to keep it off the kernel's start-up path.
    """
    import psutil

    global _process
    if _process is None:
        _process = psutil.Process()
        _process.cpu_percent()  # the first reading primes the counter
    with _process.oneshot():
        cpu = _process.cpu_percent()
        memory = _process.memory_info().rss
    return {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "kernel_cpu": cpu,
        "kernel_memory": memory,
        "host_cpu_percent": psutil.cpu_percent(),
        "cpu_count": psutil.cpu_count(),
        "host_virtual_memory": dict(psutil.virtual_memory()._asdict()),
    }
