"""The kernel process's life cycle: its sockets and heartbeat, its parent, its ordered shutdown.

[Lifecycle][async_kernel._kernel.lifecycle.Lifecycle] holds what the process opens and replaces,
from binding the sockets to terminating the zmq context. It is made and closed by `Kernel.run()`,
in the shell thread; [watch_parent_process][async_kernel._kernel.lifecycle.watch_parent_process]
runs in the control thread, and the heartbeat is a plain thread running a zmq echo device.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import zmq

from async_kernel._kernel.debugger.threads import hide_from_debugger
from async_kernel.pending import Pending, PendingCancelled, ThreadsafeEvent

if TYPE_CHECKING:
    from IPython.core.history import HistoryManager

    from async_kernel._kernel.channels import SocketChannel
    from async_kernel._kernel.introspection import Introspector
    from async_kernel._kernel.iostream import OutStream
    from async_kernel._kernel.stdin import StdinBridge
    from async_kernel.caller import Caller

__all__ = ["CLOSE_TIMEOUT", "Lifecycle", "Sockets", "watch_parent_process"]

logger = logging.getLogger("async_kernel.lifecycle")

CLOSE_TIMEOUT = 5.0
"""Seconds each step of the shutdown may take before the kernel goes on without it."""


@dataclass(frozen=True)
class Sockets:
    """The kernel's bound sockets, each to be handed to the thread that will own it."""

    shell: zmq.Socket[Any]
    stdin: zmq.Socket[Any]
    control: zmq.Socket[Any]
    iopub: zmq.Socket[Any]


class Lifecycle:
    """The zmq context, the heartbeat, the served channels and what the kernel replaced in the
    interpreter; `close()` ends them in order. Shell thread only."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self._heartbeat: threading.Thread | None = None
        self._serving: list[tuple[SocketChannel, Pending[Any]]] = []
        self._restore: list[Callable[[], None]] = []

    def bind_sockets(self, connection_info: dict[str, Any]) -> Sockets:
        """Bind the sockets of `connection_info` and start the heartbeat on its own.

        Raises:
            zmq.ZMQError: a socket cannot be bound (e.g. its port is taken).
        """
        info = connection_info
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

        shell = bind(zmq.ROUTER, "shell_port")
        stdin = bind(zmq.ROUTER, "stdin_port")
        control = bind(zmq.ROUTER, "control_port")
        iopub = bind(zmq.PUB, "iopub_port")
        # The heartbeat echoes with zmq.proxy, which must not fail on a vanished peer.
        heartbeat = bind(zmq.ROUTER, "hb_port", mandatory=False)
        self._heartbeat = threading.Thread(
            target=_echo_heartbeats, args=(heartbeat,), name="Heartbeat", daemon=True
        )
        hide_from_debugger(self._heartbeat)
        self._heartbeat.start()
        return Sockets(shell=shell, stdin=stdin, control=control, iopub=iopub)

    def restore_at_close(self, restore: Callable[[], None]) -> None:
        """Call `restore()` at close, once the threads have stopped; the last added runs first."""
        self._restore.append(restore)

    def serve(self, channels: Sequence[SocketChannel]) -> None:
        """Start serving each channel in its owner's loop; `close()` stops and closes them."""
        for channel in channels:
            self._serving.append((channel, channel.owner.call_soon(channel.serve)))

    async def close(
        self,
        *,
        stdin: StdinBridge | None,
        streams: Sequence[OutStream],
        iopub: SocketChannel | None,
        introspector: Introspector | None,
        threads: Sequence[Caller],
        history: HistoryManager | None,
    ) -> None:
        """Shut down in order, skipping the parts given as None (the start-up did not get to
        them): make waiting `input()`s fail and flush the output, stop serving, close each socket
        in the thread that owns it (iopub last, after the final output), stop the introspection
        workers and the kernel's other threads, end the history session, restore what the
        kernel replaced in the interpreter, terminate the zmq context and join the heartbeat.
        A step that waits gives up after `CLOSE_TIMEOUT` seconds and the shutdown goes on."""
        if stdin is not None:
            stdin.close()
        for stream in streams:
            stream.flush()
        for _, serving in self._serving:
            serving.cancel()
        for _, serving in self._serving:
            with anyio.move_on_after(CLOSE_TIMEOUT), contextlib.suppress(PendingCancelled):
                await serving
        channels = [channel for channel, _ in self._serving]
        if iopub is not None:
            channels.append(iopub)
        for channel in channels:
            try:
                with anyio.fail_after(CLOSE_TIMEOUT):
                    await channel.owner.call_soon(channel.close)
            except Exception as e:
                logger.warning("Could not close the %s socket in its thread: %r", channel.name, e)
        if introspector is not None:
            introspector.stop()
        for caller in threads:
            caller.stop(force=True)
        for caller in threads:
            with anyio.move_on_after(CLOSE_TIMEOUT):
                await caller.stopped
        if history is not None:
            with contextlib.suppress(Exception):
                history.end_session()
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
        heartbeat = self._heartbeat
        if heartbeat is not None:
            heartbeat.join(CLOSE_TIMEOUT)
            if heartbeat.is_alive():
                logger.warning("The heartbeat thread did not end")
            else:
                logger.debug("Joined the heartbeat thread")


def _echo_heartbeats(socket: zmq.Socket[Any]) -> None:
    """The heartbeat thread: echo every ping until the context terminates."""
    with contextlib.suppress(zmq.ZMQError):  # ETERM when the context closes
        zmq.proxy(socket, socket)
    socket.close(linger=0)


async def watch_parent_process(shutdown: ThreadsafeEvent) -> None:
    """Set `shutdown` when the process that launched the kernel dies; return once it is set.

    Runs in a caller's loop (the control thread's), checking once a second.
    """
    parent_pid = int(os.environ.get("JPY_PARENT_PID", "0") or 0)
    original_ppid = os.getppid()
    while not shutdown:
        await anyio.sleep(1)
        if os.getppid() != original_ppid or (parent_pid > 1 and not _pid_alive(parent_pid)):
            logger.warning("The parent process is gone: shutting down")
            shutdown.set()
            return


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
