"""The kernel: Jupyter messaging on Callers, one thread per job.

Threads (each a protected [Caller][async_kernel.Caller] except the heartbeat):

| thread | job |
| --- | --- |
| `MainThread` (shell caller) | runs user code: the execute queue and the comm queue |
| `ControlThread` | owns the control socket; interrupt, shutdown, kernel_info, usage, caller_state |
| `ShellChannel` | owns the shell and stdin sockets; routes requests, answers those that run no user code |
| `Introspection` | runs completion and inspection (user code: properties, `__getattr__`) with a time limit |
| `IOPub` | owns the iopub socket; sends what every other thread publishes |
| `Heartbeat` | a plain zmq echo device |

Routing by message type (`_on_shell`): `execute_request` goes to a `queue_call` queue on the
shell caller (one at a time, in order); comm messages to their own queue there (so widgets stay
live while a cell awaits); complete and inspect to the introspection worker; kernel_info,
comm_info, is_complete and history are answered in the ShellChannel thread. So every request
but an execute is answered while a cell awaits or blocks. The threads that route messages
(ShellChannel, ControlThread, IOPub) never run user code.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import platform
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import zmq
from IPython.core.completer import provisionalcompleter, rectify_completions
from IPython.utils.tokenutil import token_at_cursor

from async_kernel import __version__
from async_kernel._kernel.channels import SocketChannel
from async_kernel._kernel.comms import install_comms
from async_kernel._kernel.interrupts import InterruptController
from async_kernel._kernel.introspection import Introspector
from async_kernel._kernel.iostream import IOPub, OutStream
from async_kernel._kernel.messaging import Message, Messenger, current_parent
from async_kernel._kernel.quiet_threads import install as install_quiet_threads
from async_kernel._kernel.shell import KernelShell
from async_kernel._kernel.state_replies import ShellQueueStats, caller_state_content, usage_content
from async_kernel._kernel.stdin import StdinBridge
from async_kernel.caller import Caller
from async_kernel.pending import Pending, PendingCancelled, ThreadsafeEvent
from async_kernel.wire import (
    CALLER_STATE_FEATURE,
    CALLER_STATE_REPLY,
    CALLER_STATE_REQUEST,
    PROTOCOL_VERSION,
    USAGE_REPLY,
    USAGE_REQUEST,
    Backend,
    CallerStateReply,
)

__all__ = ["Kernel"]

logger = logging.getLogger("async_kernel.kernel")

COMM_MESSAGES = frozenset({"comm_open", "comm_msg", "comm_close"})
INTROSPECTION_MESSAGES = frozenset({"complete_request", "inspect_request"})

CLOSE_TIMEOUT = 5.0
"""Seconds each step of the shutdown may take before the kernel goes on without it."""

Idents = list[bytes]
Handler = Callable[[Message], Mapping[str, Any]]
"""Answers a request that runs no user code: request in, reply content out."""


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
    ) -> None:
        self.connection_info = connection_info
        self.introspection_time_limit = introspection_time_limit
        self.backend: Backend = backend
        key = connection_info.get("key", "")
        self.messenger = Messenger(
            key=key.encode() if isinstance(key, str) else key,
            signature_scheme=connection_info.get("signature_scheme", "hmac-sha256"),
        )
        self.started = time.time()
        self.last_execute_parent: Message | None = None
        self.execution_count = 0
        self.execute_stats = ShellQueueStats("execute_request")
        self.comm_stats = ShellQueueStats("comm_msg")
        self._received = 0  # execute requests received (ShellChannel thread)
        self._abort_through = 0  # executes received up to this number are aborted
        self._shutdown = ThreadsafeEvent()
        self.interrupts = InterruptController()
        self._serving: list[tuple[SocketChannel, Pending[Any]]] = []
        self._restore: list[Callable[[], None]] = []
        self._kernel_info_content: dict[str, Any] | None = None
        # Requests that run no user code, by channel: built once, looked up per message.
        self._shell_handlers: dict[str, Handler] = {
            "kernel_info_request": self._kernel_info,
            "comm_info_request": self._comm_info,
            "is_complete_request": self._is_complete,
            "history_request": self._history,
            "shutdown_request": self._shutdown_request,
            "interrupt_request": self._interrupt_request,
        }
        self._control_handlers: dict[str, Handler] = {
            "kernel_info_request": self._kernel_info,
            "shutdown_request": self._shutdown_request,
            "interrupt_request": self._interrupt_request,
            USAGE_REQUEST: lambda _: usage_content(),
            CALLER_STATE_REQUEST: lambda _: self.caller_state(),
            "debug_request": self._debug_request,
        }

    # --- life cycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Bind the sockets, start the threads, serve until shut down, then clean up."""
        self.shell_caller = Caller.get(protected=True)
        spawn = self.shell_caller.get
        self.control_caller = spawn(name="ControlThread", backend=self.backend, protected=True)
        self.channel_caller = spawn(name="ShellChannel", backend=self.backend, protected=True)
        self.iopub_caller = spawn(name="IOPub", backend=self.backend, protected=True)
        self.context = zmq.Context()
        try:
            self._open_channels()
            self._init_shell()
            self.iopub.status("starting", None)
            for channel in (self.control_channel, self.shell_channel, self.stdin_channel):
                self._serving.append((channel, channel.owner.call_soon(channel.serve)))
            self.control_caller.call_soon(self._watch_parent_process)
            await self._shutdown
        finally:
            await self._close()

    def _open_channels(self) -> None:
        info = self.connection_info
        transport = info.get("transport", "tcp")
        ip = info.get("ip", "127.0.0.1")

        def bind(kind: int, port_name: str, *, mandatory: bool = True) -> zmq.Socket[Any]:
            socket = self.context.socket(kind)
            socket.linger = 1000
            # No high-water mark: a ROUTER drops replies beyond it and a PUB drops messages,
            # silently, while a client reads slower than the kernel answers. Every reply and
            # every iopub message is kept until it is delivered (or its peer disconnects).
            socket.sndhwm = 0
            if kind == zmq.ROUTER:
                socket.router_handover = 1
            if kind == zmq.ROUTER and mandatory:
                # A reply to a peer that is not connected raises (and is logged), never vanishes.
                socket.router_mandatory = 1
            port = info.get(port_name, 0)
            if transport == "tcp":
                socket.bind(f"tcp://{ip}:{port}")
            else:
                socket.bind(f"ipc://{ip}-{port}")
            return socket

        receiver = self.messenger.receiver
        shell_messenger, stdin_messenger, control_messenger = receiver(), receiver(), receiver()
        self.shell_channel = SocketChannel(
            "shell",
            bind(zmq.ROUTER, "shell_port"),
            self.channel_caller,
            lambda frames: self._on_shell(shell_messenger, frames),
        )
        self.stdin_channel = SocketChannel(
            "stdin",
            bind(zmq.ROUTER, "stdin_port"),
            self.channel_caller,
            lambda frames: self._on_stdin(stdin_messenger, frames),
        )
        self.control_channel = SocketChannel(
            "control",
            bind(zmq.ROUTER, "control_port"),
            self.control_caller,
            lambda frames: self._on_control(control_messenger, frames),
        )
        iopub_socket = bind(zmq.PUB, "iopub_port")
        self.iopub = IOPub(
            SocketChannel("iopub", iopub_socket, self.iopub_caller, None), self.messenger
        )
        # The heartbeat echoes with zmq.proxy, which must not fail on a vanished peer.
        heartbeat = bind(zmq.ROUTER, "hb_port", mandatory=False)
        self._heartbeat = threading.Thread(
            target=self._echo_heartbeats, args=(heartbeat,), name="Heartbeat", daemon=True
        )
        self._heartbeat.start()

    @staticmethod
    def _echo_heartbeats(socket: zmq.Socket[Any]) -> None:
        with contextlib.suppress(zmq.ZMQError):  # ETERM when the context closes
            zmq.proxy(socket, socket)
        socket.close(linger=0)

    def _init_shell(self) -> None:
        install_quiet_threads()
        self.stdin = StdinBridge(self.stdin_channel, self.messenger)
        self.introspector = Introspector(
            self.shell_caller, time_limit=self.introspection_time_limit
        )
        self.stdout = OutStream("stdout", self.iopub, self.iopub_caller, self._default_parent)
        self.stderr = OutStream("stderr", self.iopub, self.iopub_caller, self._default_parent)
        self.iopub.streams = [self.stdout, self.stderr]
        saved_stdout, saved_stderr = sys.stdout, sys.stderr
        sys.stdout = self.stdout
        sys.stderr = self.stderr
        self._restore.append(lambda: _set_streams(saved_stdout, saved_stderr))
        self.shell = KernelShell.instance(iopub=self.iopub, kernel=self)
        self._defer_history_writes()
        self.comm_manager = install_comms(self.iopub)
        from async_kernel._kernel.magics import CallerMagics

        self.shell.register_magics(CallerMagics(self.shell, kernel=self))
        self._patch_input()
        self.interrupts.install(self.shell_caller, comm_entry=_dispatch_comm.__code__)
        self._restore.append(self.interrupts.uninstall)

    def _defer_history_writes(self) -> None:
        """Write input history to its database when the kernel goes idle, not after every cell.

        IPython's saving thread holds the history cache lock while it writes to sqlite, so the
        next cell's `store_inputs` waits for that write: measured, that was the largest cost of
        an empty cell. Writing once the execute queue has been idle for a moment keeps history
        durable within `history_write_delay` seconds of the last cell, and off the hot path.
        """
        manager = self.shell.history_manager
        if manager is not None and manager.enabled:
            manager.db_cache_size = 1_000_000
        self._history_write_scheduled = False

    history_write_delay: float = 0.5
    """Seconds of execute-queue idleness before input history is written to its database."""

    def _schedule_history_write(self) -> None:
        if not self._history_write_scheduled:
            self._history_write_scheduled = True
            self.shell_caller.call_later(self.history_write_delay, self._write_history_if_idle)

    def _write_history_if_idle(self) -> None:
        self._history_write_scheduled = False
        if self.execute_stats.pending or self.execute_stats.running_since is not None:
            self._schedule_history_write()
            return
        manager = self.shell.history_manager
        if manager is not None and manager.db_input_cache:
            if manager.save_flag is not None:
                manager.save_flag.set()
            else:
                manager.writeout_cache()

    def _default_parent(self) -> Message | None:
        return self.last_execute_parent

    def _patch_input(self) -> None:
        import builtins

        saved_input, saved_getpass = builtins.input, getpass.getpass
        builtins.input = self.raw_input  # type: ignore[assignment]
        getpass.getpass = self.getpass

        def restore() -> None:
            builtins.input = saved_input
            getpass.getpass = saved_getpass

        self._restore.append(restore)

    async def _close(self) -> None:
        """Shut down in order: stop serving, close each socket in the thread that owns it
        (iopub last, after the final output), stop the callers, restore what the kernel
        replaced in the interpreter, terminate the zmq context and join the heartbeat."""
        if hasattr(self, "stdin"):
            self.stdin.close()
        for stream in (getattr(self, "stdout", None), getattr(self, "stderr", None)):
            if stream is not None:
                stream.flush()
        for _, serving in self._serving:
            serving.cancel()
        for _, serving in self._serving:
            with anyio.move_on_after(CLOSE_TIMEOUT), contextlib.suppress(PendingCancelled):
                await serving
        channels = [channel for channel, _ in self._serving]
        if hasattr(self, "iopub"):
            channels.append(self.iopub.channel)
        for channel in channels:
            try:
                with anyio.fail_after(CLOSE_TIMEOUT):
                    await channel.owner.call_soon(channel.close)
            except Exception as e:
                logger.warning("Could not close the %s socket in its thread: %r", channel.name, e)
        if hasattr(self, "introspector"):
            self.introspector.stop()
        for caller in (self.channel_caller, self.control_caller, self.iopub_caller):
            caller.stop(force=True)
        for caller in (self.channel_caller, self.control_caller, self.iopub_caller):
            with anyio.move_on_after(CLOSE_TIMEOUT):
                await caller.stopped
        with contextlib.suppress(Exception):
            self.shell.history_manager.end_session()  # type: ignore[union-attr]
        for restore in reversed(self._restore):
            restore()
        self._restore.clear()
        self._terminate_context()

    def _terminate_context(self) -> None:
        """Terminate the zmq context; that ends the heartbeat's proxy, which closes its socket."""
        terminator = threading.Thread(target=self.context.term, name="ContextTerm", daemon=True)
        terminator.start()
        terminator.join(CLOSE_TIMEOUT)
        if terminator.is_alive():
            logger.warning("The zmq context did not terminate: a socket is still open")
            return
        logger.debug("Terminated the zmq context")
        heartbeat = getattr(self, "_heartbeat", None)
        if heartbeat is not None:
            heartbeat.join(CLOSE_TIMEOUT)
            if heartbeat.is_alive():
                logger.warning("The heartbeat thread did not end")
            else:
                logger.debug("Joined the heartbeat thread")

    def request_shutdown(self) -> None:
        """End `run()` (thread-safe)."""
        self._shutdown.set()

    async def _watch_parent_process(self) -> None:
        """Shut down when the process that launched the kernel dies."""
        parent_pid = int(os.environ.get("JPY_PARENT_PID", "0") or 0)
        original_ppid = os.getppid()
        while not self._shutdown:
            await anyio.sleep(1)
            if os.getppid() != original_ppid or (parent_pid > 1 and not _pid_alive(parent_pid)):
                logger.warning("The parent process is gone: shutting down")
                self.request_shutdown()
                return

    # --- sending -------------------------------------------------------------------------

    def _reply(
        self,
        channel: SocketChannel,
        messenger: Messenger,
        msg_type: str,
        content: Mapping[str, Any],
        parent: Message,
        idents: Idents,
    ) -> None:
        channel.send(messenger.reply_frames(msg_type, content, parent, idents))

    # --- shell channel (ShellChannel thread) -------------------------------------------------

    def _on_shell(self, messenger: Messenger, frames: list[bytes]) -> None:
        try:
            idents, msg = messenger.parse(frames)
        except ValueError as e:
            logger.warning("Dropped a shell message: %s", e)
            return
        msg_type = msg["header"].get("msg_type", "")
        if msg_type == "execute_request":
            self._received += 1
            self.execute_stats.pending += 1
            self.shell_caller.queue_call(self._execute_request, idents, msg, self._received)
        elif msg_type in COMM_MESSAGES:
            self.comm_stats.pending += 1
            self.shell_caller.queue_call(self._comm_message, idents, msg)
        elif msg_type in INTROSPECTION_MESSAGES:
            self.channel_caller.call_soon(self._introspect, messenger, idents, msg)
        else:
            self._answer(self.shell_channel, messenger, idents, msg, self._shell_handlers)

    def _answer(
        self,
        channel: SocketChannel,
        messenger: Messenger,
        idents: Idents,
        msg: Message,
        handlers: dict[str, Handler],
    ) -> None:
        """Answer a request that runs no user code: busy, reply, idle."""
        msg_type: str = msg["header"].get("msg_type", "")
        reply_type = msg_type.removesuffix("_request") + "_reply"
        handler = handlers.get(msg_type)
        content: Mapping[str, Any]
        self.iopub.status("busy", msg)
        try:
            if handler is None:
                logger.warning("Unknown message type %r on the %s channel", msg_type, channel.name)
                content = _error_content(
                    "UnknownMessageType",
                    f"{msg_type!r} is not handled on the {channel.name} channel",
                )
            else:
                try:
                    content = handler(msg)
                except Exception as e:
                    logger.exception("Error handling %s", msg_type)
                    content = _error_content(type(e).__name__, str(e))
            if msg_type.endswith("_request"):
                if msg_type == CALLER_STATE_REQUEST:
                    reply_type = CALLER_STATE_REPLY
                elif msg_type == USAGE_REQUEST:
                    reply_type = USAGE_REPLY
                self._reply(channel, messenger, reply_type, content, msg, idents)
        finally:
            self.iopub.status("idle", msg)

    async def _introspect(self, messenger: Messenger, idents: Idents, msg: Message) -> None:
        """Answer a complete or inspect request from the introspection worker (ShellChannel
        loop): busy, reply, idle, while the router goes on routing."""
        msg_type: str = msg["header"].get("msg_type", "")
        self.iopub.status("busy", msg)
        try:
            if msg_type == "complete_request":
                handler, fallback = self._complete, _empty_completion(msg)
            else:
                handler, fallback = self._inspect, _NOT_FOUND
            try:
                content = await self.introspector.answer(handler, msg, fallback)
            except Exception as e:
                logger.exception("Error handling %s", msg_type)
                content = _error_content(type(e).__name__, str(e))
            reply_type = msg_type.removesuffix("_request") + "_reply"
            self._reply(self.shell_channel, messenger, reply_type, content, msg, idents)
        finally:
            self.iopub.status("idle", msg)

    def _on_stdin(self, messenger: Messenger, frames: list[bytes]) -> None:
        try:
            _, msg = messenger.parse(frames)
        except ValueError as e:
            logger.warning("Dropped a stdin message: %s", e)
            return
        self.stdin.on_message(msg)

    # --- requests that run no user code ------------------------------------------------------

    def _kernel_info(self, msg: Message) -> dict[str, Any]:
        if self._kernel_info_content is None:  # constant for the kernel's life: build it once
            self._kernel_info_content = self._build_kernel_info()
        return self._kernel_info_content

    def _build_kernel_info(self) -> dict[str, Any]:
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
            "banner": self.shell.banner,
            "help_links": [
                {"text": "Python Reference", "url": "https://docs.python.org/3/"},
                {"text": "IPython Reference", "url": "https://ipython.readthedocs.io/"},
                {"text": "async-kernel", "url": "https://pypi.org/project/async-kernel/"},
            ],
            "debugger": False,
            "supported_features": [CALLER_STATE_FEATURE],
            "async_kernel": {"backend": self.backend},
        }

    def _comm_info(self, msg: Message) -> dict[str, Any]:
        target = msg["content"].get("target_name")
        comms = {
            comm_id: {"target_name": comm.target_name}
            for comm_id, comm in list(self.comm_manager.comms.items())
            if target is None or comm.target_name == target
        }
        return {"status": "ok", "comms": comms}

    def _complete(self, msg: Message) -> dict[str, Any]:
        code: str = msg["content"].get("code", "")
        cursor_pos = msg["content"].get("cursor_pos")
        if cursor_pos is None:
            cursor_pos = len(code)
        with provisionalcompleter():
            completions = list(
                rectify_completions(code, self.shell.Completer.completions(code, cursor_pos))
            )
        if completions:
            start, end = completions[0].start, completions[0].end
        else:
            start = end = cursor_pos
        return {
            "status": "ok",
            "matches": [c.text for c in completions],
            "cursor_start": start,
            "cursor_end": end,
            "metadata": {
                "_jupyter_types_experimental": [
                    {
                        "start": c.start,
                        "end": c.end,
                        "text": c.text,
                        "type": c.type,
                        "signature": c.signature,
                    }
                    for c in completions
                ]
            },
        }

    def _inspect(self, msg: Message) -> dict[str, Any]:
        content = msg["content"]
        code: str = content.get("code", "")
        cursor_pos = content.get("cursor_pos", len(code))
        name = token_at_cursor(code, cursor_pos)
        try:
            data = self.shell.object_inspect_mime(name, detail_level=content.get("detail_level", 0))
        except KeyError:
            return {"status": "ok", "found": False, "data": {}, "metadata": {}}
        if not self.shell.enable_html_pager:
            data.pop("text/html", None)
        return {"status": "ok", "found": True, "data": data, "metadata": {}}

    def _is_complete(self, msg: Message) -> dict[str, Any]:
        code = msg["content"].get("code", "")
        status, indent = self.shell.input_transformer_manager.check_complete(code)
        reply: dict[str, Any] = {"status": status}
        if status == "incomplete":
            reply["indent"] = " " * (indent or 0)
        return reply

    def _history(self, msg: Message) -> dict[str, Any]:
        content = msg["content"]
        manager = self.shell.history_manager
        assert manager is not None
        raw = bool(content.get("raw", True))
        output = bool(content.get("output", False))
        kind = content.get("hist_access_type", "tail")
        if kind == "tail":
            history = manager.get_tail(
                int(content.get("n", 10)), raw=raw, output=output, include_latest=True
            )
        elif kind == "range":
            history = manager.get_range(
                int(content.get("session", 0)),
                int(content.get("start", 0)),
                content.get("stop"),
                raw=raw,
                output=output,
            )
            # IPython numbers this session's rows 0; tail and search give its real number.
            current = manager.session_number
            history = [(session or current, line, entry) for session, line, entry in history]
        elif kind == "search":
            history = manager.search(
                content.get("pattern", "*"),
                raw=raw,
                output=output,
                n=content.get("n"),
                unique=bool(content.get("unique", False)),
            )
        else:
            raise ValueError(f"Unknown hist_access_type {kind!r}")
        return {"status": "ok", "history": list(history)}

    # --- control channel (ControlThread) -----------------------------------------------------

    def _on_control(self, messenger: Messenger, frames: list[bytes]) -> None:
        try:
            idents, msg = messenger.parse(frames)
        except ValueError as e:
            logger.warning("Dropped a control message: %s", e)
            return
        self._answer(self.control_channel, messenger, idents, msg, self._control_handlers)

    def caller_state(self) -> CallerStateReply:
        """The `caller_state_reply` content: cheap, lock-free, safe while the shell blocks."""
        return caller_state_content(
            backend=self.backend,
            started=self.started,
            execution_count=self.execution_count,
            queues=[self.execute_stats, self.comm_stats],
        )

    def _shutdown_request(self, msg: Message) -> dict[str, Any]:
        restart = bool(msg["content"].get("restart", False))
        # Queued cells will not run, and a running cell is interrupted, so the shell thread
        # comes back to its loop and the process exits now rather than when it is killed.
        self._abort_through = self._received
        self.interrupts.close()
        self.stdin.close()
        # Reply first (the caller of this handler sends it), then stop.
        self.control_caller.call_direct(self.request_shutdown)
        return {"status": "ok", "restart": restart}

    def _interrupt_request(self, msg: Message) -> dict[str, Any]:
        self.interrupts.interrupt()
        self.stdin.interrupt()
        return {"status": "ok"}

    def _debug_request(self, msg: Message) -> dict[str, Any]:
        return _error_content("DebuggerNotSupported", "async-kernel has no debugger")

    # --- execution (shell thread) ------------------------------------------------------------

    async def _execute_request(self, idents: Idents, msg: Message, number: int) -> None:
        stats = self.execute_stats
        stats.pending -= 1
        content = msg["content"]
        current_parent.set(msg)
        self.last_execute_parent = msg
        self.iopub.status("busy", msg, execute=True)
        try:
            if number <= self._abort_through:
                reply = {"status": "aborted", "execution_count": self.shell.execution_count - 1}
            else:
                stats.running_since = time.monotonic()
                try:
                    reply = await self._execute(idents, msg, content)
                except (Exception, KeyboardInterrupt) as e:  # a kernel bug: still a reply
                    logger.exception("Error executing a cell")
                    reply = _error_content(type(e).__name__, str(e))
                    reply["execution_count"] = self.shell.execution_count - 1
                finally:
                    stats.running_since = None
                if reply["status"] == "error" and content.get("stop_on_error", True):
                    self._abort_through = self._received
                self.stdout.flush()
                self.stderr.flush()
            self._reply(self.shell_channel, self.messenger, "execute_reply", reply, msg, idents)
        finally:
            self.iopub.status("idle", msg, execute=True)
        if not stats.pending:
            self._schedule_history_write()

    async def _execute(
        self, idents: Idents, msg: Message, content: dict[str, Any]
    ) -> dict[str, Any]:
        shell = self.shell
        code = str(content.get("code", ""))
        silent = bool(content.get("silent", False))
        # The spec forces store_history off for silent requests.
        store_history = not silent and bool(content.get("store_history", True))
        result = None
        allow_stdin = bool(content.get("allow_stdin", False))
        # Interruptible from before execute_input: a client may interrupt as soon as it sees it.
        with (
            self.interrupts.cell(msg["header"].get("msg_id")) as scope,
            self.stdin.route(msg, idents, allow_stdin),
        ):
            if not silent:
                self.iopub.publish(
                    "execute_input", {"code": code, "execution_count": shell.execution_count}, msg
                )
            shell.last_error = None
            cell_id = msg.get("metadata", {}).get("cellId")
            preprocessing_error = None
            try:
                transformed = shell.transform_cell(code)
            except Exception:
                transformed, preprocessing_error = code, sys.exc_info()
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
        interrupted = scope.cancel_called
        # The counter counts cells stored in history; IPython has moved it past the last one.
        count = shell.execution_count - 1
        if not silent:
            self.execution_count = count
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
                    self.iopub.publish("error", error, msg)
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

    async def _comm_message(self, idents: Idents, msg: Message) -> None:
        """Run a comm message's handler (shell thread), containing whatever it raises.

        An error in a handler (any BaseException: a KeyboardInterrupt from an interrupt
        included) is logged and published as an `error` addressed to the comm message; the
        comm queue and the kernel go on.
        """
        self.comm_stats.pending -= 1
        current_parent.set(msg)
        msg_type = str(msg["header"].get("msg_type"))
        self.iopub.status("busy", msg)
        self.comm_stats.running_since = time.monotonic()
        try:
            with self.interrupts.comm_handler():
                raised = _dispatch_comm(self.comm_manager, msg_type, idents, msg)
            if raised is not None:
                logger.error("A %s handler raised", msg_type, exc_info=raised)
                self.iopub.publish("error", _error_output(raised), msg)
        finally:
            self.comm_stats.running_since = None
            self.iopub.status("idle", msg)

    # --- stdin (any thread but the routers, blocking) ----------------------------------------

    def raw_input(self, prompt: str = "") -> str:
        """`input()` for user code: an input_request to the client of the running cell."""
        self.stdout.flush()
        self.stderr.flush()
        return self.stdin.request(str(prompt), password=False)

    def getpass(self, prompt: str = "Password: ", stream: Any = None) -> str:
        """`getpass.getpass()` for user code."""
        self.stdout.flush()
        self.stderr.flush()
        return self.stdin.request(str(prompt), password=True)


def _dispatch_comm(
    manager: Any, msg_type: str, idents: Idents, msg: Message
) -> BaseException | None:
    """Call the comm manager's handler for `msg`; return what it raised, if anything.

    Its frame is where an interrupt aimed at a running comm handler may raise
    KeyboardInterrupt (see `interrupts`): only inside the call below, never in the kernel.
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


def _empty_completion(msg: Message) -> dict[str, Any]:
    content = msg["content"]
    cursor = content.get("cursor_pos")
    if not isinstance(cursor, int):
        cursor = len(str(content.get("code", "")))
    return {
        "status": "ok",
        "matches": [],
        "cursor_start": cursor,
        "cursor_end": cursor,
        "metadata": {},
    }


_NOT_FOUND: dict[str, Any] = {"status": "ok", "found": False, "data": {}, "metadata": {}}


def _set_streams(stdout: Any, stderr: Any) -> None:
    sys.stdout, sys.stderr = stdout, stderr


def _error_content(ename: str, evalue: str) -> dict[str, Any]:
    return {"status": "error", "ename": ename, "evalue": evalue, "traceback": []}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
