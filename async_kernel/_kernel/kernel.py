"""The kernel: which threads exist, which sockets each owns, and where each message goes.

Threads (each a protected [Caller][async_kernel.Caller] except the heartbeat), the sockets they
own and the modules (of `async_kernel._kernel`) whose code they run:

| thread | owns | runs |
| --- | --- | --- |
| `MainThread` (shell caller) | | user code: the execute queue (`execute`), the comm queue (`comms`) |
| `subshell-<id8>` (one per subshell) | | user code: the subshell's execute queue, and its comm queue if `comms_in_subshells` (`subshells`) |
| `ControlThread` | control | the control routes (`routing`), subshells made and deleted (`subshells`); the parent-process watch (`lifecycle`) |
| `ShellChannel` | shell, stdin, iopub | the shell routes (`routing`, `queries`, `comms`, `subshells`); input replies (`stdin`); sends what every other thread publishes (`iostream`) |
| `Introspection` | | completion and inspection (user code) with a time limit (`introspection`) |
| `Debugger` (from the first debug request but `debugInfo`) | debugpy's adapter (TCP) | the debug protocol (`debugger`) |
| `Debugger-inspect` | | lists the user's variables for the debugger (user code) with a time limit (`introspection`) |
| `Heartbeat` | heartbeat | a plain zmq echo device (`lifecycle`) |

Routes by message type (`Kernel._set_routes`): `execute_request` goes to a `queue_call` queue on
the shell caller (one at a time, in order), or on its subshell's caller when its header names a
subshell; comm messages to their own queue on the shell caller (so widgets stay live while a
cell awaits, and stay on one event loop), or on the subshell's caller if `comms_in_subshells`;
complete and inspect to the introspection worker; kernel_info, comm_info, is_complete and history
(and caller_state and usage, for clients that cannot choose the control channel) are answered
in the ShellChannel thread; control requests (interrupt, shutdown, kernel_info,
usage, caller_state, create/delete/list subshell) in the ControlThread; debug requests are
answered in order by the ControlThread, which awaits each from the Debugger thread. So every
request but an execute is answered while a cell awaits, blocks or is stopped at a breakpoint.
The threads that route messages (ShellChannel, ControlThread) never run user code, and
the kernel's threads are hidden from the debugger (`debugger.threads`).

`Kernel.run()` binds the sockets, makes the parts and wires them together, serves, and shuts down
in order (`lifecycle`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import anyio

from async_kernel._kernel.channels import SocketChannel
from async_kernel._kernel.comms import CommRunner, dispatch_comm, install_comms
from async_kernel._kernel.debugger.cells import CELL_FILES
from async_kernel._kernel.debugger.threads import hide_from_debugger
from async_kernel._kernel.execute import Executor
from async_kernel._kernel.interrupts import InterruptController
from async_kernel._kernel.introspection import Introspector
from async_kernel._kernel.iostream import IOPub, OutStream, install_streams
from async_kernel._kernel.lifecycle import Lifecycle, Sockets, watch_parent_process
from async_kernel._kernel.messaging import Idents, Message, Messenger
from async_kernel._kernel.queries import ShellQueries
from async_kernel._kernel.quiet_threads import install as install_quiet_threads
from async_kernel._kernel.routing import Router, error_content
from async_kernel._kernel.shell import KernelShell
from async_kernel._kernel.state_replies import (
    caller_state_content,
    kernel_info_content,
    usage_content,
)
from async_kernel._kernel.stdin import StdinBridge
from async_kernel._kernel.subshells import Subshell, SubshellTable, UnknownSubshellError
from async_kernel.caller import Caller
from async_kernel.pending import ThreadsafeEvent
from async_kernel.wire import CALLER_STATE_REQUEST, USAGE_REQUEST, Backend, CallerStateReply

if TYPE_CHECKING:
    from async_kernel._kernel.debugger.session import Debugger

__all__ = ["Kernel"]

logger = logging.getLogger("async_kernel.kernel")

COMM_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})
"""The incoming comm messages (they have no reply)."""

SUBSHELL_CLOSE_TIMEOUT = 1.0
"""Seconds the shutdown waits, in all, for the subshells' callers to stop (a subshell cell stuck
in a long C call is left behind), so the kernel exits within jupyter_client's shutdown wait."""


class Kernel:
    """A Jupyter kernel process's messaging, shell and threads. One per process.

    Create it in the thread that should run user code, then `await kernel.run()` inside that
    thread's asyncio or trio loop; it returns after a shutdown request.
    """

    def __init__(
        self,
        connection_info: dict[str, Any],
        backend: Backend,
        *,
        introspection_time_limit: float = 5.0,
        comms_in_subshells: bool = False,
        debug_just_my_code: bool = True,
    ) -> None:
        self.connection_info = connection_info
        self.introspection_time_limit = introspection_time_limit
        self.comms_in_subshells = comms_in_subshells
        """Run comm messages whose header names a subshell in that subshell (as ipykernel does)
        instead of on the main shell. Read per message, so a cell may change it at run time
        (`get_ipython().kernel.comms_in_subshells = True`). Off by default: widget callbacks
        then all run on the main shell's event loop, where they run while a cell awaits; on,
        they run in the subshell's thread, also while the main shell blocks, but at the same
        time as the main shell's code, which libraries that are not thread-safe do not
        survive."""
        self.debug_just_my_code = debug_just_my_code
        """justMyCode for debug sessions whose `attach` does not say (JupyterLab's): step and
        stop in the user's code only, not in libraries."""
        self.backend: Backend = backend
        key = connection_info.get("key", "")
        self.messenger = Messenger(
            key=key.encode() if isinstance(key, str) else key,
            signature_scheme=connection_info.get("signature_scheme", "hmac-sha256"),
        )
        self.started = time.time()
        self.interrupts = InterruptController()
        self.executor = Executor(self.interrupts.main)
        """Runs the main shell's execute requests on the shell caller."""
        self.comm_runner = CommRunner(self.interrupts.main)
        """Runs comm messages' handlers on the shell caller."""
        self._shutdown = ThreadsafeEvent()
        self._kernel_info_content: dict[str, Any] | None = None
        self.debugger: Debugger | None = None
        """The debug session's state, from the first `debug_request` on."""
        self._debugger_caller: Caller | None = None

    @property
    def last_execute_parent(self) -> Message | None:
        """The execute request that started last, in any shell; output whose context names no
        request goes to it. Any thread."""
        return self.executor.last_parent

    @property
    def execution_count(self) -> int:
        """The count of the last non-silent cell, in any shell, as in its execute_reply. Any
        thread."""
        return self.executor.execution_count

    # --- life cycle (shell thread) -----------------------------------------------------------

    async def run(self) -> None:
        """Bind the sockets, start the threads, serve until shut down, then clean up.

        Call it once, in the thread that made the kernel, inside that thread's event loop.
        """
        self.shell_caller = Caller.get(protected=True)
        spawn = self.shell_caller.get
        self.control_caller = spawn(name="ControlThread", backend=self.backend, protected=True)
        self.channel_caller = spawn(name="ShellChannel", backend=self.backend, protected=True)
        for caller in (self.control_caller, self.channel_caller):
            hide_from_debugger(caller.thread)
        self.lifecycle = Lifecycle()
        try:
            self._open_channels(self.lifecycle.bind_sockets(self.connection_info))
            self._init_shell()
            self._set_routes()
            self.iopub.status("starting", None)
            self.lifecycle.serve([self.control_channel, self.shell_channel, self.stdin_channel])
            self.control_caller.call_soon(watch_parent_process, self._shutdown)
            await self._shutdown
        finally:
            await self._close()

    def _open_channels(self, sockets: Sockets) -> None:
        """Give each socket to the thread that owns it; each receiving socket gets its own
        Messenger (a Session's replay history is one thread's)."""
        receiver = self.messenger.receiver
        self.iopub = IOPub(
            SocketChannel("iopub", sockets.iopub, self.channel_caller, None), self.messenger
        )
        self.shell_router = Router(
            "shell", sockets.shell, self.channel_caller, receiver(), self.iopub
        )
        self.stdin = StdinBridge(sockets.stdin, self.channel_caller, self.messenger, receiver())
        self.control_router = Router(
            "control", sockets.control, self.control_caller, receiver(), self.iopub
        )
        self.shell_channel = self.shell_router.channel
        self.stdin_channel = self.stdin.channel
        self.control_channel = self.control_router.channel

    def _init_shell(self) -> None:
        """Make the parts that run user code, and put the kernel's streams, `input()` and SIGINT
        handler in place of the interpreter's (restored at close)."""
        restore_at_close = self.lifecycle.restore_at_close
        install_quiet_threads()
        self.introspector = Introspector(
            self.shell_caller, time_limit=self.introspection_time_limit
        )
        self.stdout = OutStream("stdout", self.iopub, self.channel_caller, self._default_parent)
        self.stderr = OutStream("stderr", self.iopub, self.channel_caller, self._default_parent)
        self.iopub.streams = [self.stdout, self.stderr]
        restore_at_close(install_streams(self.stdout, self.stderr))
        self.shell = KernelShell.instance(iopub=self.iopub, kernel=self)
        hide_from_debugger(getattr(self.shell.history_manager, "save_thread", None))
        self._start_executor(self.executor, self.shell_caller)
        self.comm_manager = install_comms(self.iopub)
        self.comm_runner.start(
            caller=self.shell_caller, manager=self.comm_manager, iopub=self.iopub
        )
        self.subshells = SubshellTable(
            parent=self.shell_caller,
            backend=self.backend,
            make=self._make_subshell,
            interrupts=self.interrupts,
        )
        self.queries = ShellQueries(self.shell, self.introspector)
        from async_kernel._kernel.magics import CallerMagics

        self.shell.register_magics(CallerMagics(self.shell, kernel=self))
        restore_at_close(self.stdin.install((self.stdout, self.stderr)))
        self.interrupts.install(self.shell_caller, comm_entry=dispatch_comm.__code__)
        restore_at_close(self.interrupts.uninstall)

    def _start_executor(self, executor: Executor, caller: Caller) -> None:
        executor.start(
            caller=caller,
            timer=self.control_caller,
            shell=self.shell,
            iopub=self.iopub,
            channel=self.shell_channel,
            messenger=self.messenger,
            stdin=self.stdin,
            stdout=self.stdout,
            stderr=self.stderr,
        )

    def _make_subshell(self, subshell_id: str, caller: Caller) -> Subshell:
        """The parts of a new subshell around its running caller (the subshell table calls it,
        in the control thread): its interrupts, executor and comm runner, and its routes."""
        interrupts = self.interrupts.add_shell(caller)
        executor = Executor(interrupts, self.executor.record, subshell_id=subshell_id)
        self._start_executor(executor, caller)
        comms = CommRunner(interrupts, subshell_id=subshell_id)
        comms.start(caller=caller, manager=self.comm_manager, iopub=self.iopub)
        main_comms = self.comm_runner

        def comm_route(idents: Idents, msg: Message) -> None:
            (comms if self.comms_in_subshells else main_comms).enqueue(idents, msg)

        def end_inputs() -> None:
            self.stdin.interrupt_subshell(subshell_id)

        routes = {"execute_request": executor.enqueue, **dict.fromkeys(COMM_TYPES, comm_route)}
        return Subshell(subshell_id, caller, executor, comms, interrupts, routes, end_inputs)

    def _set_routes(self) -> None:
        """Which message type goes where, per channel. Built once; looked up per message."""
        shell = self.shell_router
        executor, comms, queries = self.executor, self.comm_runner, self.queries
        # A request whose header names a subshell goes to the subshell's routes first.
        shell.subshells = self.subshells
        shell.main_if_unknown_subshell = COMM_TYPES
        shell.routes = {
            # User code, on the shell caller: cells one at a time; comm handlers in their queue.
            "execute_request": executor.enqueue,
            "comm_open": comms.enqueue,
            "comm_msg": comms.enqueue,
            "comm_close": comms.enqueue,
            # User code too (properties, __getattr__): in the introspection worker, awaited
            # in a task of the ShellChannel loop.
            "complete_request": shell.answered_in_task(queries.complete),
            "inspect_request": shell.answered_in_task(queries.inspect),
        }
        # No user code: answered in the ShellChannel thread.
        shell.handlers = {
            "kernel_info_request": self._kernel_info,
            "comm_info_request": comms.info,
            "is_complete_request": queries.is_complete,
            "history_request": queries.history,
            "shutdown_request": self._shutdown_request,
            "interrupt_request": self._interrupt_request,
            # Also on shell, for clients that cannot choose a channel (a gateway's websocket
            # without a `channel` field routes to shell): cheap, safe while any shell blocks.
            USAGE_REQUEST: lambda _: usage_content(),
            CALLER_STATE_REQUEST: lambda _: self.caller_state(),
        }
        # Answered in the ControlThread, even while user code blocks the shell thread.
        self.control_router.handlers = {
            "kernel_info_request": self._kernel_info,
            "shutdown_request": self._shutdown_request,
            "interrupt_request": self._interrupt_request,
            USAGE_REQUEST: lambda _: usage_content(),
            CALLER_STATE_REQUEST: lambda _: self.caller_state(),
            "create_subshell_request": self._create_subshell,
            "delete_subshell_request": self._delete_subshell,
            "list_subshell_request": self._list_subshells,
        }
        # Awaited from the Debugger thread, one at a time and in order.
        self.control_router.routes = {
            "debug_request": self.control_router.answered_in_order(self._debug_request),
        }

    def request_shutdown(self) -> None:
        """End `run()` (thread-safe)."""
        self._shutdown.set()

    async def _close(self) -> None:
        """Shut down in order ([Lifecycle.close][async_kernel._kernel.lifecycle.Lifecycle.close]),
        with whatever parts `run()` got to make."""
        shell: KernelShell | None = getattr(self, "shell", None)
        iopub: IOPub | None = getattr(self, "iopub", None)
        streams: list[OutStream] = [
            getattr(self, name) for name in ("stdout", "stderr") if hasattr(self, name)
        ]
        subshells: SubshellTable | None = getattr(self, "subshells", None)
        if subshells is not None:  # first: their last replies need the shell socket
            await subshells.close(SUBSHELL_CLOSE_TIMEOUT)
        await self._close_debugger()
        await self.lifecycle.close(
            stdin=getattr(self, "stdin", None),
            streams=streams,
            iopub=None if iopub is None else iopub.channel,
            introspector=getattr(self, "introspector", None),
            threads=[self.channel_caller, self.control_caller],
            history=None if shell is None else shell.history_manager,
        )

    def _default_parent(self) -> Message | None:
        return self.executor.last_parent

    # --- requests that run no user code (ShellChannel or ControlThread) ----------------------

    def caller_state(self) -> CallerStateReply:
        """The `caller_state_reply` content: cheap, safe while any shell blocks.

        Its `working` counts the execute and comm queues of every shell and the user calls of
        every shell's caller and of every caller that is not protected; the kernel's other
        callers (all protected) never count. Any thread.
        """
        queues = [self.executor.stats, self.comm_runner.stats]
        shell_callers = [self.shell_caller]
        for subshell in self.subshells.all():
            queues += subshell.queues
            shell_callers.append(subshell.caller)
        return caller_state_content(
            backend=self.backend,
            started=self.started,
            execution_count=self.executor.execution_count,
            queues=queues,
            shell_callers=shell_callers,
        )

    def _kernel_info(self, msg: Message) -> dict[str, Any]:
        if self._kernel_info_content is None:  # constant for the kernel's life: build it once
            self._kernel_info_content = kernel_info_content(
                banner=self.shell.banner, backend=self.backend
            )
        return self._kernel_info_content

    def _shutdown_request(self, msg: Message) -> dict[str, Any]:
        restart = bool(msg["content"].get("restart", False))
        # Queued cells will not run, and running cells are interrupted, so the shell threads
        # come back to their loops and the process exits now rather than when it is killed.
        self.executor.abort_received()
        self.subshells.abort_all()
        self.interrupts.close()
        self.stdin.close()
        debugger, caller = self.debugger, self._debugger_caller
        if debugger is not None and caller is not None and debugger.started:
            caller.call_soon(debugger.release_for_shutdown)  # a cell stopped at a breakpoint
        # Reply first (the router sends it when this returns), then stop.
        self.control_caller.call_direct(self.request_shutdown)
        return {"status": "ok", "restart": restart}

    def _interrupt_request(self, msg: Message) -> dict[str, Any]:
        self.interrupts.interrupt()
        self.stdin.interrupt()
        debugger, caller = self.debugger, self._debugger_caller
        if debugger is not None and caller is not None and debugger.stopped_threads:
            # A cell stopped at a breakpoint waits inside debugpy, where the interrupt never
            # lands: let it go on, and the interrupt reaches its code.
            caller.call_soon(debugger.resume_for_interrupt)
        return {"status": "ok"}

    def _create_subshell(self, msg: Message) -> dict[str, Any]:
        return {"status": "ok", "subshell_id": self.subshells.create()}

    def _delete_subshell(self, msg: Message) -> dict[str, Any]:
        subshell_id = msg["content"].get("subshell_id")
        try:
            self.subshells.delete(subshell_id)
        except UnknownSubshellError as e:  # the client's mistake, or a race: no traceback
            logger.warning("delete_subshell_request: %s", e)
            return error_content(type(e).__name__, str(e))
        return {"status": "ok"}

    def _list_subshells(self, msg: Message) -> dict[str, Any]:
        return {"status": "ok", "subshell_id": self.subshells.ids()}

    # --- the debugger (ControlThread, answered from the Debugger thread) ---------------------

    async def _debug_request(self, msg: Message) -> dict[str, Any]:
        """The `debug_reply` content: the DAP response to the request in `msg`'s content.

        JupyterLab asks every kernel it connects to for `debugInfo`: until someone debugs,
        that is answered here, without starting the Debugger thread."""
        content = msg.get("content")
        if (
            self.debugger is None
            and isinstance(content, dict)
            and content.get("command") == "debugInfo"
        ):
            from async_kernel._kernel.debugger.session import debug_info

            return debug_info(content, CELL_FILES)
        debugger, caller = self._start_debugger()
        return await caller.call_soon(debugger.handle, content, msg)

    def _start_debugger(self) -> tuple[Debugger, Caller]:
        """The debugger and its caller, made on the first debug request (control thread)."""
        if self.debugger is None or self._debugger_caller is None:
            from async_kernel._kernel.debugger.session import Debugger

            caller = self.shell_caller.get(name="Debugger", backend=self.backend, protected=True)
            hide_from_debugger(caller.thread)
            self._debugger_caller = caller
            self.debugger = Debugger(
                caller=caller,
                shell=self.shell,
                publish_event=self._publish_debug_event,
                cell_files=CELL_FILES,
                just_my_code=self.debug_just_my_code,
            )
        return self.debugger, self._debugger_caller

    def _publish_debug_event(self, event: dict[str, Any], parent: Message | None) -> None:
        self.iopub.publish("debug_event", event, parent)

    async def _close_debugger(self) -> None:
        """End a debug session, stop the Debugger thread and remove the cells' files."""
        debugger, caller = self.debugger, self._debugger_caller
        if debugger is not None and caller is not None:
            with anyio.move_on_after(SUBSHELL_CLOSE_TIMEOUT):
                try:
                    await caller.call_soon(debugger.close)
                except Exception as e:
                    logger.warning("Could not end the debug session: %r", e)
            caller.stop(force=True)
        CELL_FILES.remove()
