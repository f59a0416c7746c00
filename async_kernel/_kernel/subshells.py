"""Kernel subshells (JEP 91): the table of subshells, each a Caller in a thread of its own.

A subshell is a second (third, ...) shell of the one kernel: its own execute queue and comm
queue, run by its own [Caller][async_kernel.Caller] (named `subshell-<first 8 characters of its
id>`, a thread running the kernel's backend), on the IPython shell and user namespace that every
shell shares. Cells of one subshell run one at a time, in order; cells of different shells run at
the same time, so a subshell answers while the main shell blocks in `time.sleep`.

[SubshellTable][async_kernel._kernel.subshells.SubshellTable] owns the table:

- `create`, `delete` and `ids` answer the control channel's `create_subshell_request`,
  `delete_subshell_request` and `list_subshell_request` (the control thread);
- `route` hands a shell request whose header names a subshell to that subshell's route for its
  type (the ShellChannel thread): an `execute_request` to its executor, comm messages as the
  kernel chooses (`Kernel.comms_in_subshells`);
- `all`, `owner_of` and `abort_all` serve the caller state, `%subshell` and shutdown.

Deleting a subshell takes it out of the table at once (a request naming it afterwards is refused
as unknown), interrupts its running cell, aborts the execute requests waiting in its queue (each
gets its `aborted` reply), lets its comm queue run what it holds, and then stops its caller,
which ends its thread. The table's lock is held while a request is handed to a subshell and
while one is taken out, so a request is either queued before the end of the subshell's queues
(and answered) or refused: never lost.

The kernel (`async_kernel._kernel.kernel`) makes each subshell's parts
([Subshell][async_kernel._kernel.subshells.Subshell]); this module only holds and retires them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from async_kernel.caller import Caller, CallerStoppedError

if TYPE_CHECKING:
    from async_kernel._kernel.comms import CommRunner
    from async_kernel._kernel.execute import Executor
    from async_kernel._kernel.interrupts import InterruptController, ShellInterrupts
    from async_kernel._kernel.messaging import Idents, Message
    from async_kernel._kernel.routing import Route
    from async_kernel._kernel.state_replies import ShellQueueStats
    from async_kernel.wire import Backend

__all__ = ["Subshell", "SubshellMaker", "SubshellTable", "UnknownSubshellError", "caller_name"]

logger = logging.getLogger("async_kernel.subshells")


class UnknownSubshellError(KeyError):
    """A `subshell_id` that names no subshell of this kernel (never created, or deleted)."""

    def __init__(self, subshell_id: object) -> None:
        super().__init__(subshell_id)
        self.subshell_id = subshell_id

    def __str__(self) -> str:
        return f"Unknown subshell_id {self.subshell_id!r}"


def caller_name(subshell_id: str) -> str:
    """The name of a subshell's caller (and thread): `subshell-` and the id's first 8 characters."""
    return f"subshell-{subshell_id[:8]}"


@dataclass(eq=False)
class Subshell:
    """One subshell's parts, made by the kernel ([SubshellMaker][async_kernel._kernel.subshells.SubshellMaker])."""

    subshell_id: str
    caller: Caller
    """Runs the subshell's cells and (if the kernel routes them here) comm handlers."""
    executor: Executor
    comms: CommRunner
    interrupts: ShellInterrupts
    routes: Mapping[str, Route]
    """Message type → route, for the shell requests that run in this subshell."""
    end_inputs: Callable[[], None]
    """Makes the `input()`s waiting for this subshell's cells raise KeyboardInterrupt."""

    @property
    def queues(self) -> list[ShellQueueStats]:
        """Its rows of the caller state's `shell.queues`: execute, then comm."""
        return [self.executor.stats, self.comms.stats]


SubshellMaker = Callable[[str, Caller], Subshell]
"""Makes the parts of subshell `subshell_id` around its new, running caller."""


class SubshellTable:
    """The kernel's subshells by id. Every method may be called from any thread.

    Args:
        parent: The main shell's caller; subshell callers are its children.
        backend: The kernel's backend, which every subshell runs.
        make: Makes a subshell's parts (the kernel's wiring).
        interrupts: The kernel's interrupts, which stop reaching a subshell once it has ended.
    """

    def __init__(
        self,
        *,
        parent: Caller,
        backend: Backend,
        make: SubshellMaker,
        interrupts: InterruptController,
    ) -> None:
        self._parent = parent
        self._backend: Backend = backend
        self._make = make
        self._interrupts = interrupts
        self._lock = threading.RLock()  # reentrant: a retiring subshell may finish at once
        self._live: dict[str, Subshell] = {}  # in the order they were made
        self._retiring: dict[str, Subshell] = {}  # deleted, still answering what they held
        self._closed = False

    # --- the control channel -----------------------------------------------------------------

    def create(self) -> str:
        """Start a new subshell (its caller and thread) and return its id.

        Blocks until the new caller runs (milliseconds). Never waits for the main shell, so it
        is answered while a cell blocks there.

        Raises:
            RuntimeError: the kernel is shutting down.
        """
        while True:
            subshell_id = str(uuid.uuid4())
            name = caller_name(subshell_id)
            if name in {c.name for c in Caller.all_callers(running_only=False)}:
                continue
            caller = self._parent.get(name=name, backend=self._backend, protected=True)
            if caller.parent is self._parent and caller.protected and not self._owns(caller):
                break
            # Another thread took the name meanwhile (`get` returned its caller): try another.
        try:
            subshell = self._make(subshell_id, caller)
        except BaseException:
            caller.stop(force=True)
            raise
        with self._lock:
            closed = self._closed
            if not closed:
                self._live[subshell_id] = subshell
        if closed:
            self._interrupts.remove_shell(subshell.interrupts)
            caller.stop(force=True)
            raise RuntimeError("the kernel is shutting down")
        logger.debug("Created subshell %s (caller %r)", subshell_id, caller.name)
        return subshell_id

    def delete(self, subshell_id: object) -> None:
        """Delete a subshell: it leaves the table now and its caller stops once it has answered
        what it holds (see the module doc). Returns at once.

        Raises:
            UnknownSubshellError: no such subshell.
        """
        with self._lock:
            subshell = self._live.pop(subshell_id, None) if isinstance(subshell_id, str) else None
            if subshell is None:
                raise UnknownSubshellError(subshell_id)
            self._retire(subshell)
        logger.debug("Deleted subshell %s", subshell_id)

    def ids(self) -> list[str]:
        """The ids of the live subshells, oldest first (the main shell is not one)."""
        with self._lock:
            return list(self._live)

    # --- the shell channel -------------------------------------------------------------------

    def route(
        self, subshell_id: object, msg_type: str, idents: Idents, msg: Message
    ) -> bool | None:
        """Hand a request addressed to `subshell_id` to that subshell's route for `msg_type`.

        Returns True if it was handed on, False if the subshell has no route for this type (the
        request is answered as the main shell's would be, e.g. `kernel_info_request`), None if
        there is no such subshell. ShellChannel thread (routes return at once).
        """
        if not isinstance(subshell_id, str):
            return None
        with self._lock:
            subshell = self._live.get(subshell_id)
            if subshell is None:
                return None
            route = subshell.routes.get(msg_type)
            if route is None:
                return False
            route(idents, msg)
            return True

    # --- the caller state, %subshell, shutdown -----------------------------------------------

    def all(self) -> list[Subshell]:
        """Every subshell that may still run something: the live ones, then those deleted that
        are still answering what they held."""
        with self._lock:
            return [*self._live.values(), *self._retiring.values()]

    def owner_of(self, caller: Caller | None) -> Subshell | None:
        """The live subshell whose caller is `caller` or one of its ancestors (a `to_thread`
        worker of a subshell belongs to it), if any."""
        with self._lock:
            by_caller = {subshell.caller: subshell for subshell in self._live.values()}
        while caller is not None:
            subshell = by_caller.get(caller)
            if subshell is not None:
                return subshell
            caller = caller.parent
        return None

    def abort_all(self) -> None:
        """Abort every execute request every subshell has received and not started (shutdown)."""
        for subshell in self.all():
            subshell.executor.abort_received()

    async def close(self, timeout: float) -> None:
        """Retire every subshell and wait up to `timeout` seconds in all for their callers to
        stop; a subshell still blocked then (a cell inside a long C call) is stopped without
        waiting, its thread left to end with the process. Shutdown, in any loop (the shell
        thread's); cancelling the wait leaves the subshells retiring: each stops on its own once
        it has answered what it held. Afterwards `create` refuses.
        """
        with self._lock:
            self._closed = True
            live = list(self._live.values())
            self._live.clear()
            for subshell in live:
                self._retire(subshell)
            subshells = [*live, *self._retiring.values()]
        with anyio.move_on_after(timeout):
            for subshell in subshells:
                await subshell.caller.stopped
        for subshell in subshells:
            if not subshell.caller.stopped:
                logger.warning("Subshell %s did not stop in time", subshell.subshell_id)
            self._finish(subshell)

    # --- retiring (under the lock) -----------------------------------------------------------

    def _owns(self, caller: Caller) -> bool:
        with self._lock:
            return any(s.caller is caller for s in (*self._live.values(), *self._retiring.values()))

    def _retire(self, subshell: Subshell) -> None:
        """Interrupt the running cell, abort the waiting ones and queue the end of both queues;
        when both ends have run (in the subshell's thread), stop the caller. Under the lock:
        nothing can be routed to the subshell behind the ends."""
        self._retiring[subshell.subshell_id] = subshell
        subshell.interrupts.close()
        subshell.end_inputs()
        remaining = [2]

        def one_queue_done() -> None:  # in the subshell's thread, from each queue's end
            remaining[0] -= 1
            if not remaining[0]:
                self._finish(subshell)

        try:
            subshell.executor.close(one_queue_done)
            subshell.comms.close(one_queue_done)
        except CallerStoppedError:
            self._finish(subshell)

    def _finish(self, subshell: Subshell) -> None:
        """Stop a retired subshell's caller (its thread ends) and forget it. Idempotent."""
        with contextlib.suppress(CallerStoppedError):
            subshell.caller.stop(force=True)
        with self._lock:
            if self._retiring.get(subshell.subshell_id) is subshell:
                del self._retiring[subshell.subshell_id]
        self._interrupts.remove_shell(subshell.interrupts)
