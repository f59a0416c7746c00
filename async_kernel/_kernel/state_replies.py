"""The content of the replies that describe the kernel: `kernel_info_reply`, `caller_state_reply`
and ipykernel-compatible `usage_reply`.

`caller_state_reply` is built in the control thread from counters that other threads update,
without waiting for any of them, so a snapshot answers within milliseconds even while user code
blocks the shell thread. Its `working` field is decided here too
([caller_state_content][async_kernel._kernel.state_replies.caller_state_content] states the
rule; docs/kernel.md explains it to users). `kernel_info_reply` is the same for the kernel's
life: the kernel builds it once, in the thread of the first request (ShellChannel or
ControlThread).
"""

from __future__ import annotations

import os
import platform
import socket
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from async_kernel import __version__
from async_kernel.caller import Caller
from async_kernel.wire import (
    CALLER_STATE_FEATURE,
    CALLER_STATE_VERSION,
    DEBUGGER_FEATURE,
    PROTOCOL_VERSION,
    SUBSHELLS_FEATURE,
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

    def busy(self) -> bool:
        """A request of this queue waits or runs. Any thread, lock-free.

        `pending` is read first: the queue's runner marks a request running before it stops
        counting it as pending, so a request passing from one to the other is always seen.
        """
        return self.pending > 0 or self.running_since is not None

    def row(self, now: float) -> ShellQueueRow:
        """This queue's row; `running_for` counted to `now` (never negative: a request that
        started after `now` was read has run for 0 s)."""
        since = self.running_since
        return {
            "msg_type": self.msg_type,
            "subshell_id": self.subshell_id,
            "pending": self.pending,
            "running": since is not None,
            "running_for": None if since is None else round(max(0.0, now - since), 6),
        }


def caller_state_content(
    *,
    backend: Backend,
    started: float,
    execution_count: int,
    queues: list[ShellQueueStats],
    shell_callers: Collection[Caller] = (),
) -> CallerStateReply:
    """The `caller_state_reply` content of the [wire contract][async_kernel.wire].

    Every caller of the process has a row (`to_thread` workers included); a row's `children`
    names only callers that have a row in this reply (a child that stopped, or started, while
    the reply was being built is left out).

    `working` is true when user work is in flight, that is when

    1. a shell queue (`queues`: the execute and comm queues of the main shell and of every
       subshell) has a request waiting or running (cells waiting their turn are queued user
       work), or
    2. a shell caller (`shell_callers`: the main shell's and every subshell's, which run user
       code), or a caller that is not protected (every caller user code made with
       `Caller.get`, every `to_thread` worker), has a call scheduled (waiting, or in a
       `call_later` delay) or active, or a call waiting in a `queue_call` queue.

    The kernel's other callers (ControlThread, ShellChannel, the introspection workers)
    are protected, which marks a caller as the kernel's own, and never count: their serve loops
    and bookkeeping are always active. On a shell caller, which runs user code, the kernel's
    execute and comm queues are bookkeeping queues (`Caller._queue_bookkeeping`, counted by
    rule 1 instead), and nothing else the kernel does there counts: its deferred history write
    is timed on the control caller and runs as a direct call, and interrupts are direct calls.

    Cheap and lock-free (O(callers + queues)), safe in any thread while the shell thread blocks.
    """
    callers = Caller.all_callers(running_only=False)
    rows = [c.snapshot() for c in callers]
    named = {row["name"] for row in rows}
    for row in rows:
        children = row["children"]
        if not named.issuperset(children):
            row["children"] = [name for name in children if name in named]
    now = time.monotonic()
    working = any(q.busy() for q in queues) or any(
        c._has_user_work() for c in callers if not c.protected or c in shell_callers
    )
    return {
        "status": "ok",
        "version": CALLER_STATE_VERSION,
        "pid": os.getpid(),
        "backend": backend,
        "started": format_time(started),
        "execution_count": execution_count,
        "shell": {"queues": [q.row(now) for q in queues]},
        "callers": rows,
        "working": working,
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
        "debugger": True,
        "supported_features": [CALLER_STATE_FEATURE, SUBSHELLS_FEATURE, DEBUGGER_FEATURE],
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
