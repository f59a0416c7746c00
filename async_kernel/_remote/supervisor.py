"""The kernel process, a child of the launcher, and how signals and shutdown reach it.

Why a child process and not the kernel in the launcher's own process: the launcher must stay
answerable while user code holds the kernel's interpreter (a cell in a C call that keeps the
GIL cannot block a signal or a forced stop), and the kernel's parent-process watch then watches
the launcher, which lives exactly as long as the kernel should, whereas a launcher started
detached (`nohup ... &` over SSH) loses its own parent at once. The launcher reports its own pid
to the provisioner, the process it started: signalled or killed by the provisioner, the launcher
takes the kernel with it (a killed launcher's kernel sees its parent gone and shuts down).

Signals from the provisioner (`deliver_signal`):
- `SIGINT` becomes an `interrupt_request` on the kernel's control channel (the kernel's
  interrupts are message-mode; a bare SIGINT would be ignored by design);
- `0` is a liveness poll: nothing is sent, a dead kernel is logged;
- anything else (`SIGTERM`, `SIGKILL`, `SIGUSR1`, ...) is sent to the kernel process, by pid.

Shutdown (`shutdown`): a `shutdown_request` on control, then, if the kernel has not ended within
`SHUTDOWN_GRACE` seconds, SIGTERM, then SIGKILL, each by the kernel's pid.

Thread-safety: every method may be called from any thread; `shutdown` runs once (later calls
wait for the first to finish).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence

from .control import KernelControl

__all__ = ["KILL_GRACE", "SHUTDOWN_GRACE", "KernelProcess"]

logger = logging.getLogger("async_kernel.launch")

SHUTDOWN_GRACE = 15.0
"""Seconds the kernel gets to shut down after a shutdown request before it is terminated."""

KILL_GRACE = 5.0
"""Seconds the kernel gets to end after SIGTERM before it is killed."""

INTERRUPT_TIMEOUT = 10.0
"""Seconds to wait for the kernel's interrupt_reply before logging that none came."""


class KernelProcess:
    """The kernel's process (started by `start`) and its control channel.

    Args:
        argv: The kernel's command line (`python -m async_kernel launch -f FILE ...`).
        env: Its environment.
        control: The control-channel client for interrupt and shutdown requests; closed by
            [shutdown][async_kernel._remote.supervisor.KernelProcess.shutdown] and `close`.
    """

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], control: KernelControl) -> None:
        self._argv = list(argv)
        self._env = dict(env)
        self._control = control
        self._process: subprocess.Popen[bytes] | None = None
        self._shutdown_lock = threading.Lock()
        self._shutting_down = False

    def start(self) -> int:
        """Start the kernel process (stdout and stderr are the launcher's); return its pid.

        Raises:
            OSError: it could not be started.
        """
        self._process = subprocess.Popen(self._argv, env=self._env)
        logger.info("Started the kernel, pid %d", self._process.pid)
        return self._process.pid

    @property
    def pid(self) -> int | None:
        """The kernel's pid, once started."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Started and not ended yet."""
        return self._process is not None and self._process.poll() is None

    @property
    def shutting_down(self) -> bool:
        """A shutdown has begun."""
        return self._shutting_down

    def wait(self) -> int:
        """Block until the kernel ends; return its exit code (128 + N when killed by signal N,
        as a shell reports it). Call once, from the launcher's main thread, where signal
        handlers run while it waits."""
        assert self._process is not None, "start() first"
        code = self._process.wait()
        return 128 - code if code < 0 else code

    def deliver_signal(self, signum: int) -> None:
        """Deliver a signal from the provisioner (see the module doc). Any thread; errors are
        logged, never raised."""
        process = self._process
        if process is None:
            logger.warning("Signal %d arrived before the kernel started: dropped", signum)
            return
        if signum == 0:
            if process.poll() is not None:
                logger.info("Liveness poll: the kernel has ended (%s)", process.returncode)
            return
        if signum == signal.SIGINT:
            self._interrupt()
            return
        try:
            valid = signal.Signals(signum)
        except ValueError:
            logger.warning("Ignoring signal request %r: not a signal number", signum)
            return
        if process.poll() is not None:
            logger.info("Not sending %s: the kernel has ended", valid.name)
            return
        logger.info("Sending %s to the kernel (pid %d)", valid.name, process.pid)
        try:
            process.send_signal(valid)
        except OSError as e:
            logger.warning("Could not send %s to the kernel: %s", valid.name, e)

    def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Shut the kernel down cleanly, forcing it if it does not end within `grace` seconds
        (see the module doc); return once it has ended. Any thread; once."""
        with self._shutdown_lock:
            if self._shutting_down:
                return
            self._shutting_down = True
            process = self._process
            try:
                if process is None or process.poll() is not None:
                    return
                logger.info("Shutting the kernel down")
                # The client may have sent one already (jupyter_client does, then the provisioner
                # sends its shutdown request here): the kernel's end is what is waited for.
                try:
                    self._control.send("shutdown_request", {"restart": False})
                except Exception as e:
                    logger.warning("Could not send shutdown_request to the kernel: %r", e)
                if _ended(process, grace):
                    return
                logger.warning(
                    "The kernel did not end in %.0fs: terminating pid %d", grace, process.pid
                )
                process.terminate()
                if _ended(process, KILL_GRACE):
                    return
                logger.warning("The kernel did not end after SIGTERM: killing pid %d", process.pid)
                process.kill()
                process.wait()
            finally:
                self._control.close()

    def close(self) -> None:
        """Release the control channel (after the kernel has ended). Any thread."""
        self._control.close()

    def _interrupt(self) -> None:
        try:
            reply = self._control.request("interrupt_request", {}, timeout=INTERRUPT_TIMEOUT)
        except Exception as e:
            logger.warning("Could not send interrupt_request to the kernel: %r", e)
            return
        if reply is None:
            logger.warning("The kernel did not answer the interrupt request")
        else:
            logger.info("Interrupted the kernel: %s", reply.get("status"))


def _ended(process: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True
