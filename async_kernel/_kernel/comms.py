"""Comms (ipywidgets and friends) through the `comm` package, both ways.

Outgoing: the kernel registers its Comm class and CommManager with `comm`
([install_comms][async_kernel._kernel.comms.install_comms]), so libraries that call
`comm.create_comm()` publish over this kernel's iopub, from any thread.

Incoming: the ShellChannel thread routes `comm_open`, `comm_msg` and `comm_close` to
[CommRunner.enqueue][async_kernel._kernel.comms.CommRunner.enqueue], which queues them on the
shell thread (where user handlers expect to run) in a `queue_call` queue of their own, so they are
handled while a cell awaits. `comm_info_request` is answered in the ShellChannel thread
([CommRunner.info][async_kernel._kernel.comms.CommRunner.info]). Each subshell has a CommRunner of
its own on its caller, used only when the kernel runs comm messages addressed to a subshell in
that subshell (`Kernel.comms_in_subshells`); by default every comm message runs on the main
shell's, so widget callbacks stay on one event loop. All of them dispatch to the one comm
manager.

The comm queue is a bookkeeping queue of its shell's caller (`Caller._queue_bookkeeping`): its
messages are counted in `CommRunner.stats` (pending, running since), which the caller state's
`working` rule reads, and not as that caller's user calls.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import TYPE_CHECKING, Any

import comm
from comm.base_comm import BaseComm, BuffersType, CommManager, MaybeDict

from async_kernel._kernel.messaging import Idents, Message, current_parent
from async_kernel._kernel.state_replies import ShellQueueStats

if TYPE_CHECKING:
    from collections.abc import Callable

    from async_kernel._kernel.interrupts import ShellInterrupts
    from async_kernel._kernel.iostream import IOPub
    from async_kernel.caller import Caller

__all__ = ["CommRunner", "dispatch_comm", "install_comms"]

logger = logging.getLogger("async_kernel.comms")


class KernelComm(BaseComm):
    """A comm whose messages go out on the kernel's iopub."""

    iopub: IOPub | None = None  # set by install_comms

    def publish_msg(
        self,
        msg_type: str,
        data: MaybeDict = None,
        metadata: MaybeDict = None,
        buffers: BuffersType = None,
        **keys: Any,
    ) -> None:
        if self.iopub is None:
            return
        content = {"data": {} if data is None else data, "comm_id": self.comm_id, **keys}
        self.iopub.publish(
            msg_type,
            content,
            current_parent.get(),
            metadata=metadata,
            buffers=list(buffers) if buffers else None,
        )


def install_comms(iopub: IOPub) -> CommManager:
    """Make `comm.create_comm` / `comm.get_comm_manager` use this kernel; return the manager."""
    KernelComm.iopub = iopub
    manager = CommManager()

    def create_comm(*args: Any, **kwargs: Any) -> BaseComm:
        return KernelComm(*args, **kwargs)

    def get_comm_manager() -> CommManager:
        return manager

    comm.create_comm = create_comm
    comm.get_comm_manager = get_comm_manager
    return manager


class CommRunner:
    """Runs the handlers of incoming comm messages in their own queue on a shell's caller.

    The main shell's is made with the kernel (its counters are part of the caller state from
    the start), a subshell's with the subshell;
    [start][async_kernel._kernel.comms.CommRunner.start] gives it the parts it runs with.
    """

    def __init__(self, interrupts: ShellInterrupts, *, subshell_id: str | None = None) -> None:
        self._interrupts = interrupts
        self.stats = ShellQueueStats("comm_msg", subshell_id)
        """The comm queue's row of the caller state (pending, running since)."""
        self._on_closed: Callable[[], None] | None = None
        # Set by start():
        self._caller: Caller
        self._manager: CommManager
        self._iopub: IOPub

    def start(self, *, caller: Caller, manager: CommManager, iopub: IOPub) -> None:
        """Run handlers of `manager` on `caller` (the shell's caller). Once, before the first
        message is routed here (any thread)."""
        self._caller = caller
        self._manager = manager
        self._iopub = iopub

    def enqueue(self, idents: Idents, msg: Message) -> None:
        """The route of comm_open, comm_msg and comm_close: queue it on the shell's caller.

        ShellChannel thread only.
        """
        self.stats.pending += 1  # before it is queued: never running nor pending in between
        try:
            self._caller._queue_bookkeeping(self.comm_message, idents, msg)
        except BaseException:
            self.stats.pending -= 1
            raise

    def close(self, on_closed: Callable[[], None]) -> None:
        """Call `on_closed()` in the shell's thread once every message queued so far has been
        handled (the subshell is being deleted). Call it in the thread that routes messages
        here, after the last one was routed. Once."""
        self._on_closed = on_closed
        self._caller._queue_bookkeeping(self.comm_message, [], None)

    async def comm_message(self, idents: Idents, msg: Message | None) -> None:
        """Run a comm message's handler, containing whatever it raises. Shell thread only.

        An error in a handler (any BaseException: a KeyboardInterrupt from an interrupt
        included) is logged and published as an `error` addressed to the comm message; the
        comm queue and the kernel go on. `msg` None is the end of the queue that `close()`
        queued.
        """
        if msg is None:
            on_closed, self._on_closed = self._on_closed, None
            if on_closed is not None:
                on_closed()
            return
        stats = self.stats
        # Running before it stops being pending: the `working` rule, which reads `pending` then
        # `running_since`, sees no gap between the two.
        stats.running_since = time.monotonic()
        stats.pending -= 1
        current_parent.set(msg)
        msg_type = str(msg["header"].get("msg_type"))
        try:
            self._iopub.status("busy", msg)
        except BaseException:
            stats.running_since = None
            raise
        try:
            with self._interrupts.comm_handler():
                raised = dispatch_comm(self._manager, msg_type, idents, msg)
            if raised is not None:
                logger.error("A %s handler raised", msg_type, exc_info=raised)
                self._iopub.publish("error", _error_output(raised), msg)
        finally:
            stats.running_since = None
            self._iopub.status("idle", msg)

    def info(self, msg: Message) -> dict[str, Any]:
        """The comm_info_reply content: the open comms (of one target, if asked).

        ShellChannel thread (it reads a copy of the manager's table of comms).
        """
        target = msg["content"].get("target_name")
        comms = {
            comm_id: {"target_name": opened.target_name}
            for comm_id, opened in list(self._manager.comms.items())
            if target is None or opened.target_name == target
        }
        return {"status": "ok", "comms": comms}


def dispatch_comm(
    manager: CommManager, msg_type: str, idents: Idents, msg: Message
) -> BaseException | None:
    """Call the comm manager's handler for `msg`; return what it raised, if anything.

    Its frame is where an interrupt aimed at a running comm handler may raise
    KeyboardInterrupt (the kernel gives its code to `InterruptController.install` as the comm
    entry): only inside the call below, never in the kernel.
    """
    try:
        getattr(manager, msg_type)(None, idents, msg)
    except BaseException as e:  # user handler code: contain everything
        return e
    return None


def _error_output(error: BaseException) -> dict[str, Any]:
    """The `error` iopub content for an exception raised by user code outside a cell."""
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    return {
        "ename": type(error).__name__,
        "evalue": str(error),
        "traceback": [line.rstrip("\n") for line in lines],
    }
