"""Interrupting the running cell, whether it awaits or blocks the shell thread.

An `interrupt_request` arrives on the control thread. It does two things:

1. cancels the running cell's cancel scope, from the shell loop (this stops a cell that awaits);
2. signals the shell thread with SIGINT. The kernel's SIGINT handler raises KeyboardInterrupt
   only if user code is executing at that instant (a cell's frame is on the interrupted stack),
   so a cell that blocks the thread gets KeyboardInterrupt where it is, and the event loop's own
   machinery is never hit. A signal that lands before the cell's code has started (IPython is
   still compiling it) would be lost, so the signal is repeated every `RESIGNAL_INTERVAL`
   seconds until the cell's code has received it or the cell has ended.

The kernel installs its handler before the event loop starts, so neither asyncio nor trio
installs its own (which would cancel the whole kernel on SIGINT). Stray SIGINTs (Ctrl-C in the
terminal that launched the kernel) therefore only ever interrupt user code, never the kernel.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import anyio

from async_kernel.caller import Caller

__all__ = ["InterruptController", "is_cell_frame"]

CELL_FILENAME_PREFIX = "<ipython-input-"

RESIGNAL_INTERVAL = 0.1
"""Seconds between repeated SIGINTs while an interrupt waits for the cell's code to receive it."""


def is_cell_frame(frame: FrameType | None) -> bool:
    """True if `frame` or a frame it was called from runs code compiled from a cell."""
    while frame is not None:
        if frame.f_code.co_filename.startswith(CELL_FILENAME_PREFIX):
            return True
        frame = frame.f_back
    return False


class InterruptController:
    """Tracks the running cell and interrupts it on request (thread-safe)."""

    def __init__(self) -> None:
        self._shell: Caller | None = None
        self._main_thread_id = threading.main_thread().ident
        self._cell_id: str | None = None
        self._scope: anyio.CancelScope | None = None
        self._armed = False
        self._closing = False

    def install(self, shell: Caller) -> None:
        """Install the SIGINT handler (main thread only) and remember the shell caller."""
        self._shell = shell
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._on_sigint)

    @contextlib.contextmanager
    def cell(self, cell_id: str | None) -> Iterator[anyio.CancelScope]:
        """Run a cell inside a cancel scope that `interrupt()` cancels. Shell thread only."""
        with anyio.CancelScope() as scope:
            self._cell_id, self._scope = cell_id, scope
            # Set the scope, then look at `_closing`; `close()` does the reverse. So a cell
            # entering while the kernel shuts down is either cancelled here or seen there.
            if self._closing:
                scope.cancel()
            try:
                yield scope
            finally:
                self._cell_id, self._scope = None, None
                self._armed = False

    @property
    def cancelled(self) -> bool:
        """Whether an interrupt has cancelled the running cell's scope. Shell thread only."""
        scope = self._scope
        return scope is not None and scope.cancel_called

    def close(self) -> None:
        """Interrupt the running cell and cancel any cell that starts from now on (shutdown)."""
        self._closing = True
        self.interrupt()

    def interrupt(self) -> None:
        """Interrupt the running cell, if any. Callable from any thread."""
        scope, cell_id, shell = self._scope, self._cell_id, self._shell
        if scope is None or shell is None:
            return
        self._armed = True

        def cancel_if_same_cell() -> None:
            if self._cell_id == cell_id and self._scope is scope:
                scope.cancel()

        with contextlib.suppress(RuntimeError):
            shell.call_direct(cancel_if_same_cell)
        if self._main_thread_id is not None and shell.thread is threading.main_thread():
            signal.pthread_kill(self._main_thread_id, signal.SIGINT)
            threading.Thread(
                target=self._resignal, args=(scope,), name="InterruptResignal", daemon=True
            ).start()

    def _resignal(self, scope: anyio.CancelScope) -> None:
        """Repeat SIGINT while the interrupt of the cell of `scope` has not been delivered."""
        pause = threading.Event()
        while not pause.wait(RESIGNAL_INTERVAL):
            if not self._armed or self._scope is not scope or self._main_thread_id is None:
                return
            signal.pthread_kill(self._main_thread_id, signal.SIGINT)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._armed and self._scope is not None and is_cell_frame(frame):
            self._armed = False
            raise KeyboardInterrupt
