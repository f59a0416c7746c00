"""The worker pool of one caller: idle `to_thread` workers, taken and given back.

A worker is a caller of its own (a child of the pool's owner, in its own thread, running the
owner's backend), made by the registry. `to_thread` takes an idle one or starts a new one and
gives it back when its call is done; at most `owner.max_idle_workers` wait idle, the others are
stopped.

Thread model: `take`, `give_back` and `forget` may be called from any thread (`give_back` runs
in the worker's thread, as a done callback). `idle` is a deque, whose appends and pops are
atomic; a worker that stops while idle is skipped by `take` and dropped by `forget`.
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import TYPE_CHECKING

from async_kernel._caller.lifecycle import State, stopped_error
from async_kernel._caller.registry import registry

if TYPE_CHECKING:
    from async_kernel.caller import Caller

__all__ = ["WorkerPool"]


class WorkerPool:
    """The idle workers of `owner` (see the module doc)."""

    __slots__ = ("_owner", "idle")

    def __init__(self, owner: Caller) -> None:
        self._owner = owner
        self.idle: deque[Caller] = deque()
        """Running workers waiting for a call, the most recently returned last."""

    def take(self) -> Caller:
        """A running worker for one call: an idle one, else a new one.

        Raises CallerStoppedError if the owner is not running.
        """
        idle = self.idle
        while True:
            try:
                worker = idle.pop()
            except IndexError:
                break
            if worker._scheduler.state is State.RUNNING:
                return worker
        owner = self._owner
        if owner._scheduler.state is not State.RUNNING:
            raise stopped_error(owner.name)
        return registry.start_worker(owner)

    def give_back(self, worker: Caller) -> None:
        """Keep `worker`, done with its call, idle if there is room; else stop it."""
        owner = self._owner
        if (
            worker._scheduler.state is State.RUNNING
            and owner._scheduler.state is State.RUNNING
            and len(self.idle) < owner.max_idle_workers
        ):
            self.idle.append(worker)
        else:
            worker.stop(force=True)

    def forget(self, worker: Caller) -> None:
        """Drop `worker` (it has stopped) if it is idle here."""
        with contextlib.suppress(ValueError):
            self.idle.remove(worker)
