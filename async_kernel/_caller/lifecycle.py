"""The lifecycle of a caller: its four states, and the error raised once it is stopping.

A caller is made STARTING, is RUNNING once its scheduler accepts work, STOPPING from `stop()`
until its loop has ended, then STOPPED. The state is one plain attribute of the caller's
scheduler (`Scheduler.state`), read without a lock from any thread; it moves to STOPPING and
STOPPED under the registry lock only (see `async_kernel._caller.registry`), and never back.
"""

from __future__ import annotations

import enum

from async_kernel.wire import CallerLifecycle

__all__ = ["CallerStoppedError", "State", "stopped_error"]


class CallerStoppedError(RuntimeError):
    """Raised when work is scheduled on a caller that is stopping or stopped."""


class State(enum.Enum):
    """Where a caller is in its life; `lifecycle` is the name the wire contract uses."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"

    @property
    def lifecycle(self) -> CallerLifecycle:
        """The state as the `state` field of a `CallerRow` names it."""
        return _LIFECYCLE[self]


_LIFECYCLE: dict[State, CallerLifecycle] = {
    State.STARTING: "starting",
    State.RUNNING: "running",
    State.STOPPING: "stopping",
    State.STOPPED: "stopped",
}


def stopped_error(name: str) -> CallerStoppedError:
    """The error for new work offered to the stopping or stopped caller `name`."""
    return CallerStoppedError(f"Caller {name!r} is stopped; it accepts no new calls")
