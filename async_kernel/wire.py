"""The wire contract between an async kernel and the server side that asks it about its state.

Everything that crosses the process boundary is defined here and nowhere else: message names,
the typed content of ``caller_state_reply`` (and of its rows), the provisioner's entry-point
name, the backend names, the protocol version and the time format. The kernel builds its
replies with these types, the provisioner and the server extension read them with these types,
and the tests check replies against them, so mypy guards the boundary from both sides.

The module imports only the standard library: the server imports it without loading the kernel,
the Caller machinery, IPython or zmq.

Shape of ``caller_state_reply`` (the fields a client may rely on; a kernel may add more)::

    CallerStateReply
    ├── status, version, pid, backend, started, execution_count
    ├── shell: ShellState
    │   └── queues: [ShellQueueRow]        one per kind of shell request the kernel queues
    └── callers: [CallerRow]               one per caller (event-loop thread) in the kernel
        └── queues: [CallerQueueRow]       one per open ``Caller.queue_call`` queue
"""

# No `from __future__ import annotations` here: TypedDict needs evaluated annotations to tell
# NotRequired keys from required ones on Python 3.11.
import datetime
from typing import Final, Literal, NotRequired, TypedDict, TypeGuard

__all__ = [
    "BACKENDS",
    "CALLER_STATE_FEATURE",
    "CALLER_STATE_REPLY",
    "CALLER_STATE_REQUEST",
    "CALLER_STATE_VERSION",
    "DEBUGGER_FEATURE",
    "PROTOCOL_VERSION",
    "PROVISIONER_NAME",
    "SUBSHELLS_FEATURE",
    "TIME_FORMAT",
    "USAGE_REPLY",
    "USAGE_REQUEST",
    "Backend",
    "CallerLifecycle",
    "CallerQueueRow",
    "CallerRow",
    "CallerStateReply",
    "ShellQueueRow",
    "ShellState",
    "UsageReply",
    "format_time",
    "is_backend",
    "pending_total",
    "validate_backend",
]

# --- names -----------------------------------------------------------------------------------

CALLER_STATE_REQUEST: Final = "caller_state_request"
"""Control-channel request for a snapshot of the kernel's callers (content ``{}``)."""

CALLER_STATE_REPLY: Final = "caller_state_reply"
"""The reply to [CALLER_STATE_REQUEST][async_kernel.wire.CALLER_STATE_REQUEST]: a
[CallerStateReply][async_kernel.wire.CallerStateReply]."""

CALLER_STATE_VERSION: Final = 1
"""Version of the ``caller_state_reply`` content; bumped only when a field changes meaning."""

CALLER_STATE_FEATURE: Final = "caller_state"
"""Listed in ``kernel_info_reply.supported_features`` by kernels that answer caller_state."""

SUBSHELLS_FEATURE: Final = "kernel subshells"
"""Listed in ``kernel_info_reply.supported_features`` by kernels that implement subshells (JEP 91:
``create_subshell_request``, ``delete_subshell_request`` and ``list_subshell_request`` on
control, and ``subshell_id`` in the header of shell requests)."""

DEBUGGER_FEATURE: Final = "debugger"
"""Listed in ``kernel_info_reply.supported_features`` (with ``debugger: true``) by kernels that
answer the Jupyter debug protocol: ``debug_request`` on control, ``debug_event`` on iopub."""

USAGE_REQUEST: Final = "usage_request"
"""ipykernel-compatible resource usage request (control channel)."""

USAGE_REPLY: Final = "usage_reply"
"""The reply to [USAGE_REQUEST][async_kernel.wire.USAGE_REQUEST]: a
[UsageReply][async_kernel.wire.UsageReply]."""

PROTOCOL_VERSION: Final = "5.4"
"""The Jupyter messaging protocol version this kernel implements.

Sent in ``kernel_info_reply.protocol_version`` and in every message header. It is the kernel's
own, not the version of the installed jupyter_client (which may know a newer protocol than this
kernel speaks). Kernel subshells (JEP 91, slated for 5.5) are announced by
[SUBSHELLS_FEATURE][async_kernel.wire.SUBSHELLS_FEATURE] instead, as ipykernel 7 does (it reports
5.3): clients look for the feature, and jupyter_client knows no version past 5.4.
"""

PROVISIONER_NAME: Final = "async-kernel-provisioner"
"""The provisioner's ``jupyter_client.kernel_provisioners`` entry-point name, as kernelspecs
name it in ``metadata.kernel_provisioner.provisioner_name``."""

Backend = Literal["asyncio", "trio"]
"""The event-loop libraries a kernel (and a Caller) can run on."""

BACKENDS: Final[tuple[Backend, ...]] = ("asyncio", "trio")
"""Every [Backend][async_kernel.wire.Backend], the default (asyncio) first."""

TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
"""How times cross the wire: ISO 8601 in UTC with microseconds, e.g.
``2026-11-25T10:00:00.000000Z`` (``started``, and the server's ``fetched_at``)."""


def format_time(timestamp: float) -> str:
    """A ``time.time()`` value in [TIME_FORMAT][async_kernel.wire.TIME_FORMAT]."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime(TIME_FORMAT)


def is_backend(value: object) -> TypeGuard[Backend]:
    """True if `value` names a [Backend][async_kernel.wire.Backend]."""
    return value in BACKENDS


def validate_backend(value: object) -> Backend:
    """Return `value` if it names a [Backend][async_kernel.wire.Backend].

    Raises:
        ValueError: naming the valid backends.
    """
    if is_backend(value):
        return value
    valid = ", ".join(repr(b) for b in BACKENDS)
    raise ValueError(f"Unknown backend {value!r}; valid backends are {valid}.")


# --- caller_state_reply ------------------------------------------------------------------------

CallerLifecycle = Literal["starting", "running", "stopping", "stopped"]
"""Where a caller is in its life: [CallerRow][async_kernel.wire.CallerRow]'s ``state``."""


class ShellQueueRow(TypedDict):
    """One kind of shell request a shell queues on its thread (``shell.queues``): the main
    shell's rows first, then each subshell's."""

    msg_type: str
    """The request type queued here: ``execute_request``, or ``comm_msg`` for comm messages."""
    subshell_id: str | None
    """The subshell the queue belongs to (its thread is the caller named
    ``subshell-<first 8 characters of the id>``); null for the main shell."""
    pending: int
    """Requests received and not started yet."""
    running: bool
    """A request of this queue is being handled now."""
    running_for: float | None
    """Seconds the running request has run; null when ``running`` is false."""


class ShellState(TypedDict):
    """The kernel's shell (``caller_state_reply.shell``)."""

    queues: list[ShellQueueRow]


class CallerQueueRow(TypedDict):
    """One open ``Caller.queue_call`` queue of a caller (``CallerRow.queues``)."""

    function: str
    """``module.qualname`` of the queue's function."""
    pending: int
    """Calls waiting behind the running one."""
    running: bool
    """A call of this queue runs now."""


class CallerRow(TypedDict):
    """One caller: an event loop in a thread of the kernel (``caller_state_reply.callers``)."""

    name: str
    """Unique among the kernel's live callers (``MainThread``, ``ControlThread``, ...)."""
    thread_id: int | None
    """``threading.get_ident()`` of its thread; null before the thread started."""
    thread_name: NotRequired[str | None]
    """Its thread's name (usually the caller's name)."""
    backend: Backend
    running: bool
    """The caller accepts and runs work."""
    state: NotRequired[CallerLifecycle]
    protected: bool
    """A kernel caller that ``stop()`` leaves running unless forced."""
    parent: str | None
    """The name of the caller it was made from; null for a root caller."""
    children: list[str]
    """Names of the callers made from it, ``to_thread`` workers included."""
    worker: bool
    """A ``to_thread`` worker."""
    idle_workers: int
    """Idle ``to_thread`` workers kept for reuse."""
    scheduled: int
    """Calls accepted and not started (``call_later`` calls still in their delay included)."""
    active: int
    """Calls started and not finished."""
    queues: list[CallerQueueRow]


class CallerStateReply(TypedDict):
    """The content of ``caller_state_reply``."""

    status: Literal["ok"]
    version: int
    """[CALLER_STATE_VERSION][async_kernel.wire.CALLER_STATE_VERSION] of the kernel."""
    pid: int
    """The kernel's process id (on the kernel's host)."""
    backend: Backend
    """The backend of the kernel's shell thread."""
    started: str
    """When the kernel started, in [TIME_FORMAT][async_kernel.wire.TIME_FORMAT]."""
    execution_count: int
    """The count of the last non-silent cell, as in its ``execute_reply``."""
    shell: ShellState
    callers: list[CallerRow]
    working: NotRequired[bool]
    """User work is in flight: a cell or comm handler runs, or user calls or queue items are
    scheduled or running on any caller (see the kernel docs for the exact rule). The server's
    activity monitor keeps a working kernel from being culled. Kernels before this field
    existed leave it out."""


def pending_total(reply: CallerStateReply) -> int:
    """Total waiting work in a ``caller_state_reply``: what is accepted and not started yet.

    The sum of the shell queues' ``pending``, every caller's ``scheduled`` and every caller
    queue's ``pending``. Tolerates rows with missing counters (a kernel of another version).
    """
    total = sum(int(q.get("pending") or 0) for q in reply.get("shell", {}).get("queues") or [])
    for caller in reply.get("callers") or []:
        total += int(caller.get("scheduled") or 0)
        total += sum(int(q.get("pending") or 0) for q in caller.get("queues") or [])
    return total


# --- usage_reply -------------------------------------------------------------------------------


class UsageReply(TypedDict):
    """The content of ``usage_reply``, with ipykernel's field names (jupyter-resource-usage)."""

    hostname: str
    pid: int
    kernel_cpu: float
    """CPU percent of the kernel process since the previous request."""
    kernel_memory: int
    """Resident set size of the kernel process, in bytes."""
    host_cpu_percent: float
    cpu_count: int | None
    host_virtual_memory: dict[str, float]
    """``psutil.virtual_memory()`` as a mapping (``total``, ``available``, ``percent``, ...)."""
