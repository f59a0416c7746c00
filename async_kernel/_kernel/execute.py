"""Execute requests: one at a time, in the order they arrived, on a shell's caller.

Each shell has an [Executor][async_kernel._kernel.execute.Executor]: the main shell's runs on the
shell caller (the main thread), each subshell's on that subshell's caller. The ShellChannel
thread routes each `execute_request` to its shell's
[Executor.enqueue][async_kernel._kernel.execute.Executor.enqueue], which numbers it and appends
it to a `queue_call` queue on the shell's caller. That queue runs
[Executor.execute_request][async_kernel._kernel.execute.Executor.execute_request] for each request
in turn, in the shell's thread: busy, `execute_input`, the cell (IPython's `run_cell_async`,
inside the shell's cancel scope and the cell's stdin route), the cell's buffered output,
`execute_reply`, idle. Executors of different shells run at the same time, on one shared
IPython shell and user namespace; the shell claims each stored cell's execution count under a
lock ([KernelShell.claim_execution_count][async_kernel._kernel.shell.KernelShell.claim_execution_count]),
so two cells never get the same count.

A request's own messages (busy, `execute_input`, the reply, idle) are sent from the shell's
thread itself when no other execute request waits in its queue: the client is waiting for them,
and the thread that owns the sockets is not woken up for them. When more requests wait, they are
handed to the socket owner's thread (`hand_over`), which sends them while the shell runs the next
cell; either way they leave in order.

Aborting: when a cell fails and its request has `stop_on_error` (the default), every request
received until then by the same shell is aborted (other shells' queues are not touched); a
shutdown request aborts every request received so far. An aborted request is answered
`status: "aborted"` without running. The router numbers requests as they arrive and an abort
records the number received so far, so which requests an abort reaches does not depend on how far
the queue has got.

Input history is written to its database once the execute queue has been idle for
`history_write_delay` seconds, not after every cell. The delay is timed on another caller (the
control caller) and the write itself is a `call_direct` on the shell's caller, so this
bookkeeping never counts as a scheduled or active call there: an idle kernel's caller state
says `working: false` however soon it is asked after a cell.

The execute queue is a bookkeeping queue of its shell's caller (`Caller._queue_bookkeeping`): the
requests are counted in `stats` (pending, running since), which the `working` rule reads, and
not as that caller's user calls.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from async_kernel._kernel.messaging import Idents, Message, Messenger, current_parent
from async_kernel._kernel.routing import error_content
from async_kernel._kernel.state_replies import ShellQueueStats
from async_kernel.caller import CallerStoppedError

if TYPE_CHECKING:
    from collections.abc import Callable

    from async_kernel._kernel.channels import SocketChannel
    from async_kernel._kernel.interrupts import ShellInterrupts
    from async_kernel._kernel.iostream import IOPub, OutStream
    from async_kernel._kernel.shell import KernelShell
    from async_kernel._kernel.stdin import StdinBridge
    from async_kernel.caller import Caller

__all__ = ["ExecuteRecord", "Executor"]

logger = logging.getLogger("async_kernel.execute")


class ExecuteRecord:
    """What every shell's executor records for the kernel as a whole (plain attributes, written
    by the shells' threads and read by any, without a lock)."""

    def __init__(self) -> None:
        self.last_parent: Message | None = None
        """The execute request that started last, in any shell: output whose context names no
        request goes to it."""
        self.execution_count = 0
        """The count of the last non-silent cell to finish, in any shell, as in its
        execute_reply."""


class Executor:
    """Runs one shell's execute requests, one at a time, and keeps their counters.

    The main shell's is made with the kernel (its counters are part of the caller state from
    the start), a subshell's with the subshell;
    [start][async_kernel._kernel.execute.Executor.start] gives it the parts it runs with. The
    counters (`stats`, and the shared `record`) are plain attributes written by one thread and
    read by any, without a lock.
    """

    history_write_delay: float = 0.5
    """Seconds of execute-queue idleness before input history is written to its database."""

    def __init__(
        self,
        interrupts: ShellInterrupts,
        record: ExecuteRecord | None = None,
        *,
        subshell_id: str | None = None,
    ) -> None:
        self._interrupts = interrupts
        self.record = ExecuteRecord() if record is None else record
        """Shared by every shell's executor: the last request started, the last count."""
        self.subshell_id = subshell_id
        """The subshell whose requests this runs; None for the main shell."""
        self.stats = ShellQueueStats("execute_request", subshell_id)
        """The execute queue's row of the caller state (pending, running since)."""
        self._received = 0  # execute requests received (ShellChannel thread)
        self._abort_through = 0  # execute requests received up to this number are aborted
        self._history_write_scheduled = False
        self._on_closed: Callable[[], None] | None = None
        # Set by start():
        self._caller: Caller
        self._timer: Caller
        self._shell: KernelShell
        self._iopub: IOPub
        self._channel: SocketChannel
        self._messenger: Messenger
        self._stdin: StdinBridge
        self._stdout: OutStream
        self._stderr: OutStream

    @property
    def last_parent(self) -> Message | None:
        """The execute request that started last, in any shell. Any thread."""
        return self.record.last_parent

    @property
    def execution_count(self) -> int:
        """The count of the last non-silent cell, in any shell, as in its execute_reply."""
        return self.record.execution_count

    def start(
        self,
        *,
        caller: Caller,
        timer: Caller,
        shell: KernelShell,
        iopub: IOPub,
        channel: SocketChannel,
        messenger: Messenger,
        stdin: StdinBridge,
        stdout: OutStream,
        stderr: OutStream,
    ) -> None:
        """Run requests on `caller` (the shell's caller) in `shell`, replying on `channel`.

        `timer` (the control caller, which never runs user code) times the deferred history
        write, so the shell caller's counters hold user calls only. Once, before the first
        request is routed here (any thread).
        """
        self._caller = caller
        self._timer = timer
        self._shell = shell
        self._iopub = iopub
        self._channel = channel
        self._messenger = messenger
        self._stdin = stdin
        self._stdout = stdout
        self._stderr = stderr
        self._defer_history_writes()

    def enqueue(self, idents: Idents, msg: Message) -> None:
        """The route of `execute_request`: number it and queue it on the shell's caller.

        ShellChannel thread only (the numbering takes no lock).

        Raises:
            CallerStoppedError: the shell's caller has stopped (the kernel is shutting down).
        """
        self._received += 1
        self.stats.pending += 1  # before it is queued: never running nor pending in between
        try:
            self._caller._queue_bookkeeping(self.execute_request, idents, msg, self._received)
        except BaseException:
            self.stats.pending -= 1
            raise

    def abort_received(self) -> None:
        """Abort every execute request received so far that has not started (shutdown).

        Any thread.
        """
        self._abort_through = self._received

    def close(self, on_closed: Callable[[], None]) -> None:
        """Abort every request received so far, then call `on_closed()` in the shell's thread
        once each of them has been answered (the subshell is being deleted).

        Call it in the thread that routes requests here, after the last one was routed, so
        nothing can be queued behind the end of the queue. Once.
        """
        self.abort_received()
        self._on_closed = on_closed
        self._caller._queue_bookkeeping(self.execute_request, [], None, 0)

    async def execute_request(self, idents: Idents, msg: Message | None, number: int) -> None:
        """Answer execute request number `number`: busy, run it (or abort it), reply, idle.

        `msg` None is the end of the queue that `close()` queued. Shell thread only: the
        execute queue calls it.
        """
        if msg is None:
            on_closed, self._on_closed = self._on_closed, None
            if on_closed is not None:
                on_closed()
            return
        stats = self.stats
        aborted = number <= self._abort_through
        if not aborted:
            # Running before it stops being pending: the `working` rule, which reads `pending`
            # then `running_since`, sees no gap between the two.
            stats.running_since = time.monotonic()
        stats.pending -= 1
        content = msg["content"]
        current_parent.set(msg)
        self.record.last_parent = msg
        try:
            self._iopub.status("busy", msg, execute=True, hand_over=stats.pending > 0)
        except BaseException:
            stats.running_since = None
            raise
        try:
            if aborted:
                reply = {"status": "aborted", "execution_count": self._shell.execution_count - 1}
            else:
                try:
                    reply = await self._run_cell(idents, msg, content)
                except (Exception, KeyboardInterrupt) as e:  # a kernel bug: still a reply
                    logger.exception("Error executing a cell")
                    reply = error_content(type(e).__name__, str(e))
                    reply["execution_count"] = self._shell.execution_count - 1
                finally:
                    stats.running_since = None
                if reply["status"] == "error" and content.get("stop_on_error", True):
                    self._abort_through = self._received
                self._stdout.flush()
                self._stderr.flush()
            frames = self._messenger.reply_frames("execute_reply", reply, msg, idents)
            self._channel.send(frames, hand_over=stats.pending > 0)
        finally:
            self._iopub.status("idle", msg, execute=True, hand_over=stats.pending > 0)
        if not stats.pending:
            self._schedule_history_write()

    async def _run_cell(
        self, idents: Idents, msg: Message, content: dict[str, Any]
    ) -> dict[str, Any]:
        """Run the request's code in the shell; the execute_reply content of how it went."""
        shell = self._shell
        code = str(content.get("code", ""))
        silent = bool(content.get("silent", False))
        # The spec forces store_history off for silent requests.
        store_history = not silent and bool(content.get("store_history", True))
        result = None
        allow_stdin = bool(content.get("allow_stdin", False))
        # Interruptible from before execute_input: a client may interrupt as soon as it sees it.
        with (
            self._interrupts.cell(msg["header"].get("msg_id")) as scope,
            self._stdin.route(msg, idents, allow_stdin),
        ):
            shell.last_error = None
            cell_id = msg.get("metadata", {}).get("cellId")
            preprocessing_error = None
            try:
                transformed = shell.transform_cell(code)
            except Exception:
                transformed, preprocessing_error = code, sys.exc_info()
            # A stored cell holds the count from here until IPython has claimed it (cells of
            # other shells may start meanwhile): execute_input shows the count the cell gets.
            count = shell.claim_execution_count() if store_history else shell.execution_count
            try:
                if not silent:
                    self._iopub.publish(
                        "execute_input",
                        {"code": code, "execution_count": count},
                        msg,
                        hand_over=self.stats.pending > 0,
                    )
                if scope.cancel_called:  # shutting down: the cell does not start
                    result = None
                else:
                    result = await shell.run_cell_async(
                        code,
                        store_history=store_history,
                        silent=silent,
                        cell_id=cell_id,
                        transformed_cell=transformed,
                        preprocessing_exc_tuple=preprocessing_error,
                    )
            finally:
                claimed = shell.release_execution_count()
        interrupted = scope.cancel_called
        # Not stored (silent, store_history off, empty, or never started): the count of the
        # last stored cell, as IPython reports it.
        count = shell.execution_count - 1 if claimed is None else claimed
        if not silent:
            self.record.execution_count = count
        failed = result is None or not result.success or interrupted
        if failed:
            error = shell.last_error
            raised = None if result is None else result.error_before_exec or result.error_in_exec
            if error is None and not interrupted and raised is not None:
                # Shown without a traceback (e.g. a UsageError): name it as raised.
                error = {"ename": type(raised).__name__, "evalue": str(raised), "traceback": []}
            elif error is None or (interrupted and error.get("ename") != "KeyboardInterrupt"):
                error = {"ename": "KeyboardInterrupt", "evalue": "", "traceback": []}
                if interrupted and shell.last_error is None:
                    self._iopub.publish("error", error, msg)
            reply: dict[str, Any] = {"status": "error", "execution_count": count, **error}
            reply["user_expressions"] = {}
        else:
            reply = {
                "status": "ok",
                "execution_count": count,
                "user_expressions": shell.user_expressions(content.get("user_expressions") or {}),
            }
        reply["payload"] = shell.payloads().read_payload()
        shell.payloads().clear_payload()
        if shell.exit_now:
            shell.exit_now = False
        return reply

    # --- input history (shell thread) --------------------------------------------------------

    def _defer_history_writes(self) -> None:
        """Write input history to its database when the kernel goes idle, not after every cell.

        IPython's saving thread holds the history cache lock while it writes to sqlite, so the
        next cell's `store_inputs` waits for that write: measured, that was the largest cost of
        an empty cell. Writing once the execute queue has been idle for a moment keeps history
        durable within `history_write_delay` seconds of the last cell, and off the hot path.
        """
        manager = self._shell.history_manager
        if manager is not None and manager.enabled:
            manager.db_cache_size = 1_000_000
        self._history_write_scheduled = False

    def _schedule_history_write(self) -> None:
        """Write the history once `history_write_delay` has passed (shell thread).

        Timed on the control caller, then run on the shell caller as a direct call: never a
        scheduled or active call of the shell caller, so never user work in the caller state.
        """
        if not self._history_write_scheduled:
            self._history_write_scheduled = True
            self._timer.call_later(self.history_write_delay, self._history_write_due)

    def _history_write_due(self) -> None:
        """Hand the history write to the shell thread. Timer (control) thread."""
        # Shutting down, the shell caller may refuse it: the history session ends on its own.
        with contextlib.suppress(CallerStoppedError):
            self._caller.call_direct(self._write_history_if_idle)

    def _write_history_if_idle(self) -> None:
        self._history_write_scheduled = False
        if self.stats.pending or self.stats.running_since is not None:
            self._schedule_history_write()
            return
        manager = self._shell.history_manager
        if manager is not None and manager.db_input_cache:
            if manager.save_flag is not None:
                manager.save_flag.set()
            else:
                manager.writeout_cache()
