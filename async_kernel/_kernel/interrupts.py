"""Interrupting the running cell, whether it awaits or blocks the shell thread, and nothing else.

An `interrupt_request` arrives on the control thread. It does two things:

1. cancels the running cell's cancel scope, from the shell loop (this stops a cell that awaits);
2. signals the shell thread with SIGINT. The kernel's SIGINT handler raises KeyboardInterrupt
   only inside the *running cell's own execution*: when the interrupted stack passes through
   IPython's `run_code` (which runs the cell's code and handles KeyboardInterrupt) and the
   interrupted frame is above it, i.e. the cell's code (or what it calls) is executing right
   now. Anything else the shell thread may be running at that instant (the event loop's
   machinery, another task, a comm handler, a `queue_call` item, IPython's own bookkeeping) is
   never hit. Nor is async-kernel's own code that the cell calls (`print` writing to the
   kernel's stream, a `call_soon`, publishing a display): the innermost frame that is either the
   user's or async-kernel's must be the user's, or a blocking wait marked
   `async_kernel._interruptible.interruptible` (see there why). A signal that lands while the
   cell is not executing user code (it awaits, IPython is still compiling it, or it is inside
   async-kernel) is repeated every `RESIGNAL_INTERVAL` seconds until the cell's code has received
   it or the cell has ended.

When no cell runs but a comm handler does (a widget callback that spins), the interrupt targets
that handler the same way: the stack must pass through the kernel's comm dispatch frame.

The kernel installs its handler before the event loop starts, so neither asyncio nor trio
installs its own (which would cancel the whole kernel on SIGINT). Stray SIGINTs (Ctrl-C in the
terminal that launched the kernel) therefore only ever interrupt user code, never the kernel.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sysconfig
import threading
from collections.abc import Iterator
from types import CodeType, FrameType

import anyio
from IPython.core.interactiveshell import InteractiveShell

import async_kernel
from async_kernel._interruptible import INTERRUPTIBLE
from async_kernel.caller import Caller

__all__ = ["InterruptController", "in_kernel_code", "interrupts_execution_of"]

RESIGNAL_INTERVAL = 0.1
"""Seconds between repeated SIGINTs while an interrupt waits for its target to be executing."""

RUN_CODE: CodeType = InteractiveShell.run_code.__code__
"""The code of IPython's `run_code`: a cell's code runs directly above a frame of it."""


def interrupts_execution_of(frame: FrameType | None, entry: CodeType) -> bool:
    """True if `frame` runs inside a call of `entry`, above the frame of `entry` itself.

    That is: walking from `frame` towards the bottom of the stack meets a frame of code `entry`,
    and `frame` is not that frame (a KeyboardInterrupt raised there would escape `entry`'s own
    handling).
    """
    above = False
    while frame is not None:
        if frame.f_code is entry:
            return above
        above = True
        frame = frame.f_back
    return False


_PACKAGE_DIR = os.path.dirname(os.path.abspath(async_kernel.__file__)) + os.sep


def in_kernel_code(frame: FrameType | None, entry: CodeType) -> bool:
    """True if `frame` is executing async-kernel's own code (between it and `entry`).

    Walking from `frame` towards `entry`, the first frame that is async-kernel's or the user's
    decides: async-kernel's (a module of this package) means yes, unless its function is marked
    interruptible; the user's means no. Frames of other libraries (the standard library, trio,
    zmq) are passed over: they belong to whoever called them.
    """
    while frame is not None and frame.f_code is not entry:
        code = frame.f_code
        if code in INTERRUPTIBLE:
            return False
        if code.co_filename.startswith(_PACKAGE_DIR):
            return True
        if not _is_library(code.co_filename):
            return False
        frame = frame.f_back
    return False


_LIBRARY_DIRS = tuple(
    {
        os.path.join(path, "")
        for key, path in sysconfig.get_paths().items()
        if key in ("stdlib", "platstdlib", "purelib", "platlib")
    }
)
"""The interpreter's library directories: the standard library and site-packages (where anyio,
trio and zmq live)."""


def _is_library(filename: str) -> bool:
    return filename.startswith(_LIBRARY_DIRS) or filename.startswith("<frozen ")


class InterruptController:
    """Tracks the running cell (and comm handler) and interrupts it on request (thread-safe)."""

    def __init__(self) -> None:
        self._shell: Caller | None = None
        self._main_thread_id = threading.main_thread().ident
        self._cell_id: str | None = None
        self._scope: anyio.CancelScope | None = None
        self._comm_entry: CodeType | None = None
        self._comm_running = 0
        # What the armed SIGINT handler may interrupt: RUN_CODE, the comm entry, or None; and
        # for a cell, the scope of the cell it was armed for (a later cell is never hit).
        self._target: CodeType | None = None
        self._target_scope: anyio.CancelScope | None = None
        self._generation = 0
        self._closing = False

    def install(self, shell: Caller, *, comm_entry: CodeType | None = None) -> None:
        """Install the SIGINT handler (main thread only) and remember the shell caller.

        `comm_entry` is the code of the function that dispatches comm messages to their
        handlers; an interrupt while no cell runs targets the handler running above it.
        """
        self._shell = shell
        self._comm_entry = comm_entry
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._on_sigint)

    def uninstall(self) -> None:
        """Give SIGINT back to Python's default handler (main thread only; at shutdown)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)

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
                self._target = None

    @contextlib.contextmanager
    def comm_handler(self) -> Iterator[None]:
        """Mark a comm handler as running (shell thread only), so an interrupt can reach it
        when no cell runs."""
        self._comm_running += 1
        try:
            yield
        finally:
            self._comm_running -= 1
            if not self._comm_running and self._target is self._comm_entry:
                self._target = None

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
        """Interrupt the running cell, else the running comm handler, if any. Any thread."""
        shell = self._shell
        if shell is None:
            return
        scope, cell_id = self._scope, self._cell_id
        if scope is not None:
            target: CodeType | None = RUN_CODE

            def cancel_if_same_cell() -> None:
                if self._cell_id == cell_id and self._scope is scope:
                    scope.cancel()

            with contextlib.suppress(RuntimeError):
                shell.call_direct(cancel_if_same_cell)
        elif self._comm_running and self._comm_entry is not None:
            target = self._comm_entry
        else:
            return
        if self._main_thread_id is None or shell.thread is not threading.main_thread():
            return  # signals reach only the main thread; the cancel scope has to do
        self._generation += 1
        generation = self._generation
        self._target_scope = scope
        self._target = target
        signal.pthread_kill(self._main_thread_id, signal.SIGINT)
        threading.Thread(
            target=self._resignal, args=(generation,), name="InterruptResignal", daemon=True
        ).start()

    def _resignal(self, generation: int) -> None:
        """Repeat SIGINT while interrupt number `generation` has not been delivered."""
        pause = threading.Event()
        while not pause.wait(RESIGNAL_INTERVAL):
            if (
                not self._still_aimed()
                or self._generation != generation
                or self._main_thread_id is None
            ):
                return
            signal.pthread_kill(self._main_thread_id, signal.SIGINT)

    def _still_aimed(self) -> bool:
        """Whether the armed interrupt's target still runs: the same cell, or a comm handler.

        An interrupt that raced the end of its cell is dropped here, never delivered to the
        next cell.
        """
        target = self._target
        if target is None:
            return False
        if target is RUN_CODE:
            return self._scope is not None and self._scope is self._target_scope
        return self._comm_running > 0

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if not self._still_aimed():
            self._target = None
            return
        target = self._target
        if (
            target is not None
            and interrupts_execution_of(frame, target)
            and not in_kernel_code(frame, target)
        ):
            self._target = None
            raise KeyboardInterrupt
        # Not the target's own code right now: the resignal thread tries again shortly.
