"""The content of `caller_state_reply` and ipykernel-compatible `usage_reply`.

Built in the control thread from counters that other threads update, without waiting for any of
them, so a snapshot answers within milliseconds even while user code blocks the shell thread.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from async_kernel.caller import Caller
from async_kernel.wire import CALLER_STATE_VERSION

__all__ = ["ShellQueueStats", "caller_state_content", "usage_content"]


@dataclass
class ShellQueueStats:
    """Counters of one kind of shell request queued on the shell thread (updated lock-free)."""

    msg_type: str
    subshell_id: str | None = None
    pending: int = 0
    running_since: float | None = field(default=None)

    def row(self, now: float) -> dict[str, Any]:
        since = self.running_since
        return {
            "msg_type": self.msg_type,
            "subshell_id": self.subshell_id,
            "pending": self.pending,
            "running": since is not None,
            "running_for": None if since is None else round(now - since, 6),
        }


def iso_utc(timestamp: float) -> str:
    """`2026-11-25T10:00:00.000000Z` for a `time.time()` value."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def caller_state_content(
    *,
    backend: str,
    started: float,
    execution_count: int,
    queues: list[ShellQueueStats],
) -> dict[str, Any]:
    """The `caller_state_reply` content of the wire contract (see DESIGN / docs)."""
    now = time.monotonic()
    callers = Caller.all_callers(running_only=False)
    return {
        "status": "ok",
        "version": CALLER_STATE_VERSION,
        "pid": os.getpid(),
        "backend": backend,
        "started": iso_utc(started),
        "execution_count": execution_count,
        "shell": {"queues": [q.row(now) for q in queues]},
        "callers": [c.snapshot() for c in callers],
    }


_process: Any = None  # psutil.Process, made on the first usage_request


def usage_content() -> dict[str, Any]:
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
