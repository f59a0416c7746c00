"""The kernel: Jupyter messaging on Callers, one thread per job.

Threads (each a protected [Caller][async_kernel.Caller] except the heartbeat):

| thread | job |
| --- | --- |
| `MainThread` (shell caller) | runs user code: the execute queue and the comm queue |
| `ControlThread` | owns the control socket; interrupt, shutdown, kernel_info, usage, caller_state |
| `ShellChannel` | owns the shell and stdin sockets; routes requests, answers those that run no user code |
| `IOPub` | owns the iopub socket; sends what every other thread publishes |
| `Heartbeat` | a plain zmq echo device |

Routing by message type (see `ShellRouter`): `execute_request` goes to a `queue_call` queue on the
shell caller (one at a time, in order); comm messages to their own queue there (so widgets stay
live while a cell awaits); kernel_info, comm_info, complete, inspect, is_complete and history are
answered in the ShellChannel thread, so they are answered while a cell awaits or blocks.
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
from collections.abc import Callable
from typing import Any

import anyio
import jupyter_client
import zmq
from IPython.core.completer import provisionalcompleter, rectify_completions
from IPython.core.error import StdinNotImplementedError
from IPython.utils.tokenutil import token_at_cursor

from async_kernel import __version__
from async_kernel._backend import Backend
from async_kernel.caller import Caller
from async_kernel.caller_state import ShellQueueStats, caller_state_content, usage_content
from async_kernel.channels import SocketChannel
from async_kernel.comms import install_comms
from async_kernel.interrupts import InterruptController
from async_kernel.iostream import IOPub, OutStream
from async_kernel.messaging import Message, Messenger, current_parent
from async_kernel.pending import Pending, ThreadsafeEvent
from async_kernel.shell import KernelShell
from async_kernel.wire import (
    CALLER_STATE_FEATURE,
    CALLER_STATE_REPLY,
    CALLER_STATE_REQUEST,
    USAGE_REPLY,
    USAGE_REQUEST,
)

__all__ = ["Kernel"]

logger = logging.getLogger("async_kernel.kernel")

COMM_MESSAGES = frozenset({"comm_open", "comm_msg", "comm_close"})

Idents = list[bytes]
Handler = Callable[[Message], dict[str, Any]]
"""Answers a request that runs no user code: request in, reply content out."""


class Kernel:
    """A Jupyter kernel process's messaging, shell and threads. One per process.

    Create it in the thread that should run user code, then `await kernel.run()` inside that
    thread's asyncio or trio loop; it returns after a shutdown request.
    """

    def __init__(self, connection_info: dict[str, Any], backend: Backend) -> None:
        self.connection_info = connection_info
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
        self._input_waiter: Pending[str] | None = None
        self._stdin_route: tuple[Idents, Message, bool] | None = None
        self.interrupts = InterruptController()
        self._kernel_info_content: dict[str, Any] | None = None
        # Requests that run no user code, by channel: built once, looked up per message.
        self._shell_handlers: dict[str, Handler] = {
            "kernel_info_request": self._kernel_info,
            "comm_info_request": self._comm_info,
            "complete_request": self._complete,
            "inspect_request": self._inspect,
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
                channel.owner.call_soon(channel.serve)
            self.control_caller.call_soon(self._watch_parent_process)
            await self._shutdown
        finally:
            await self._close()

    def _open_channels(self) -> None:
        info = self.connection_info
        transport = info.get("transport", "tcp")
        ip = info.get("ip", "127.0.0.1")

        def bind(kind: int, port_name: str) -> zmq.Socket[Any]:
            socket = self.context.socket(kind)
            socket.linger = 1000
            if kind == zmq.ROUTER:
                socket.router_handover = 1
            port = info.get(port_name, 0)
            if transport == "tcp":
                socket.bind(f"tcp://{ip}:{port}")
            else:
                socket.bind(f"ipc://{ip}-{port}")
            return socket

        receiver = self.messenger.receiver
        shell_messenger, control_messenger = receiver(), receiver()
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
            lambda frames: self._on_stdin(shell_messenger, frames),
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
        heartbeat = bind(zmq.ROUTER, "hb_port")
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
        self.stdout = OutStream("stdout", self.iopub, self.iopub_caller, self._default_parent)
        self.stderr = OutStream("stderr", self.iopub, self.iopub_caller, self._default_parent)
        self.iopub.streams = [self.stdout, self.stderr]
        sys.stdout = self.stdout
        sys.stderr = self.stderr
        self.shell = KernelShell.instance(iopub=self.iopub, kernel=self)
        self._defer_history_writes()
        self.comm_manager = install_comms(self.iopub)
        from async_kernel.magics import CallerMagics

        self.shell.register_magics(CallerMagics(self.shell, kernel=self))
        self._patch_input()
        self.interrupts.install(self.shell_caller)

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

        builtins.input = self.raw_input  # type: ignore[assignment]
        getpass.getpass = self.getpass

    async def _close(self) -> None:
        for stream in (getattr(self, "stdout", None), getattr(self, "stderr", None)):
            if stream is not None:
                stream.flush()
        for caller in (self.channel_caller, self.control_caller, self.iopub_caller):
            caller.stop(force=True)
        for caller in (self.channel_caller, self.control_caller, self.iopub_caller):
            with anyio.move_on_after(2):
                await caller.stopped
        with contextlib.suppress(Exception):
            self.shell.history_manager.end_session()  # type: ignore[union-attr]
        self.context.destroy(linger=100)

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
        content: dict[str, Any],
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

    def _on_stdin(self, messenger: Messenger, frames: list[bytes]) -> None:
        try:
            _, msg = messenger.parse(frames)
        except ValueError as e:
            logger.warning("Dropped a stdin message: %s", e)
            return
        waiter = self._input_waiter
        if msg["header"].get("msg_type") == "input_reply" and waiter is not None:
            waiter._set_result(str(msg["content"].get("value", "")))
        else:
            logger.warning("Unexpected %r on stdin", msg["header"].get("msg_type"))

    # --- requests that run no user code ------------------------------------------------------

    def _kernel_info(self, msg: Message) -> dict[str, Any]:
        if self._kernel_info_content is None:  # constant for the kernel's life: build it once
            self._kernel_info_content = self._build_kernel_info()
        return self._kernel_info_content

    def _build_kernel_info(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "protocol_version": jupyter_client.protocol_version,
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

    def caller_state(self) -> dict[str, Any]:
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
        # Reply first (the caller of this handler sends it), then stop.
        self.control_caller.call_direct(self.request_shutdown)
        return {"status": "ok", "restart": restart}

    def _interrupt_request(self, msg: Message) -> dict[str, Any]:
        self.interrupts.interrupt()
        waiter = self._input_waiter
        if waiter is not None:
            waiter._set_exception(KeyboardInterrupt())
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
        if number <= self._abort_through:
            self.iopub.status("busy", msg)
            reply = {"status": "aborted", "execution_count": self.shell.execution_count - 1}
            self._reply(self.shell_channel, self.messenger, "execute_reply", reply, msg, idents)
            self.iopub.status("idle", msg)
            return
        stats.running_since = time.monotonic()
        try:
            reply = await self._execute(idents, msg, content)
        except Exception as e:  # a kernel bug: the client still gets its reply
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
        self.iopub.status("idle", msg)
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
        self.iopub.status("busy", msg)
        result = None
        # Interruptible from before execute_input: a client may interrupt as soon as it sees it.
        with self.interrupts.cell(msg["header"].get("msg_id")) as scope:
            if not silent:
                self.iopub.publish(
                    "execute_input", {"code": code, "execution_count": shell.execution_count}, msg
                )
            self._stdin_route = (idents, msg, bool(content.get("allow_stdin", False)))
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
        self._stdin_route = None
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
        self.comm_stats.pending -= 1
        current_parent.set(msg)
        msg_type = msg["header"].get("msg_type")
        self.iopub.status("busy", msg)
        self.comm_stats.running_since = time.monotonic()
        try:
            getattr(self.comm_manager, msg_type)(None, idents, msg)
        except Exception:
            logger.exception("Error handling %s", msg_type)
        finally:
            self.comm_stats.running_since = None
            self.iopub.status("idle", msg)

    # --- stdin (shell thread, blocking) ------------------------------------------------------

    def raw_input(self, prompt: str = "") -> str:
        """`input()` for cells: an input_request to the client that sent the execute request."""
        return self._request_input(str(prompt), password=False)

    def getpass(self, prompt: str = "Password: ", stream: Any = None) -> str:
        """`getpass.getpass()` for cells."""
        return self._request_input(str(prompt), password=True)

    def _request_input(self, prompt: str, *, password: bool) -> str:
        route = self._stdin_route
        if (
            route is None
            or not route[2]
            or threading.current_thread() is not threading.main_thread()
        ):
            raise StdinNotImplementedError(
                "The frontend does not support input requests (allow_stdin is false)"
            )
        idents, parent, _ = route
        self.stdout.flush()
        self.stderr.flush()
        waiter: Pending[str] = Pending()
        self._input_waiter = waiter
        try:
            frames = self.messenger.reply_frames(
                "input_request", {"prompt": prompt, "password": password}, parent, idents
            )
            self.stdin_channel.send(frames)
            return waiter.wait_sync()
        finally:
            self._input_waiter = None


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
