"""One launch, start to end: ports, connection file, response, kernel, comm port, clean-up.

[launch][async_kernel._remote.launcher.launch] runs in the launcher's main thread and returns
the exit code. The order is chosen so a bad launch leaves nothing behind and tells the
provisioner nothing it cannot use: the public key is checked and the comm port is listening
before the connection info is sent; the kernel is started only once the provisioner has it
(its client connects lazily, so a kernel that binds a moment later is found).

SIGTERM (a pod or container being stopped), SIGINT (Ctrl-C) and SIGHUP to the launcher shut the
kernel down cleanly, as a shutdown request on the comm port does; a second one forces it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from .connection import CHANNEL_PORTS, new_connection_info, reserve_ports, write_connection_file
from .control import KernelControl
from .errors import FAILED, LaunchError
from .listener import CommListener
from .options import LaunchOptions
from .response import encrypt_connection_info, load_public_key, send_connection_info
from .supervisor import KernelProcess

__all__ = ["launch"]

logger = logging.getLogger("async_kernel.launch")

_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)


def launch(options: LaunchOptions) -> int:
    """Launch the kernel for a remote provisioner and serve it until it ends; return the exit
    code (the kernel's, once it has run). Main thread only (it installs signal handlers).

    Raises:
        LaunchError: the launch could not start (nothing is left running or written).
    """
    public_key = load_public_key(options.public_key)
    sockets = reserve_ports(options.ip, options.port_range, len(CHANNEL_PORTS) + 1)
    comm_socket = sockets.pop()
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    connection_file: str | None = None
    try:
        comm_socket.listen(16)
        info = new_connection_info(options.ip, ports)
        connection_file = write_connection_file(info, options.kernel_id)
        pid = os.getpid()
        response = {
            **info,
            "pid": pid,
            "pgid": os.getpgid(pid) if hasattr(os, "getpgid") else pid,
            "comm_port": comm_socket.getsockname()[1],
            "kernel_id": options.kernel_id,
        }
        send_connection_info(
            options.response_host,
            options.response_port,
            encrypt_connection_info(response, public_key),
        )
        logger.info(
            "Sent the connection info of kernel %s to %s (comm port %d)",
            options.kernel_id,
            options.response_address,
            response["comm_port"],
        )
        kernel_argv = options.kernel_argv
        kernel = KernelProcess(
            [sys.executable, "-m", "async_kernel", "launch", "-f", connection_file, *kernel_argv],
            # The kernel watches its parent: the launcher, not whoever started the launcher
            # (JPY_PARENT_PID reaches a pod from the server's environment).
            {**os.environ, "JPY_PARENT_PID": str(pid)},
            KernelControl(info),
        )
        try:
            kernel.start()
        except OSError as e:
            kernel.close()
            raise LaunchError(f"Cannot start the kernel: {e}.", FAILED) from None
        listener = CommListener(comm_socket, kernel)
        listener.start()
        restore = _stop_on_signals(kernel)
        try:
            code = kernel.wait()
        finally:
            restore()
            listener.close()
            kernel.close()
        logger.info("The kernel ended with exit code %d", code)
        return code
    finally:
        with contextlib.suppress(OSError):
            comm_socket.close()
        if connection_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(connection_file)


def _stop_on_signals(kernel: KernelProcess) -> Callable[[], None]:
    """Shut the kernel down (in a thread of its own) on a stop signal, and kill it on the
    second; return a function that restores the previous handlers."""
    signals_seen = 0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            logger.info("Got %s: shutting the kernel down", signal.Signals(signum).name)
            threading.Thread(target=kernel.shutdown, name="KernelShutdown", daemon=True).start()
        else:
            logger.warning("Got %s again: killing the kernel", signal.Signals(signum).name)
            kernel.deliver_signal(signal.SIGKILL if hasattr(signal, "SIGKILL") else signum)

    previous = {signum: signal.signal(signum, on_signal) for signum in _STOP_SIGNALS}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore
