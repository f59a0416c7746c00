"""Interrupting the running cells, whether they await or block their shells' threads; nothing else.

Interrupts are kernel-wide: an `interrupt_request` (it names no subshell) reaches the main shell
and every subshell ([ShellInterrupts][async_kernel._kernel.interrupts.ShellInterrupts], one per
shell, all held by the [InterruptController][async_kernel._kernel.interrupts.InterruptController]).
It arrives on the control thread and, for each shell, does two things:

1. cancels the shell's running cell's cancel scope, from that shell's loop (this stops a cell
   that awaits);
2. for the main shell, signals the shell thread with SIGINT. The kernel's SIGINT handler raises
   KeyboardInterrupt only inside the *running cell's own execution*: when the interrupted stack
   passes through
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

Signals reach only the main thread, so a subshell (a thread of its own) gets the KeyboardInterrupt
another way: a helper thread looks at the subshell thread's current frame
(`sys._current_frames()`) with the same test as the SIGINT handler and, when it passes, raises
KeyboardInterrupt in that thread with `PyThreadState_SetAsyncExc`, re-checking at once and
withdrawing it if the thread has moved on; it looks again every `LOOK_INTERVAL` seconds until
then. Python raises such an exception at the thread's next bytecode boundary, so a subshell cell
blocked inside one C call (`time.sleep`, a lock) is interrupted when that call returns; a cell
that awaits is cancelled at once, as in the main shell.

The kernel installs its handler before the event loop starts, so neither asyncio nor trio
installs its own (which would cancel the whole kernel on SIGINT). Stray SIGINTs (Ctrl-C in the
terminal that launched the kernel) therefore only ever interrupt user code, never the kernel.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import sysconfig
import threading
from collections.abc import Iterator
from types import CodeType, FrameType

import anyio
from IPython.core.interactiveshell import InteractiveShell

import async_kernel
from async_kernel._interruptible import INTERRUPTIBLE
from async_kernel._kernel.debugger.threads import hide_from_debugger
from async_kernel.caller import Caller

__all__ = [
    "InterruptController",
    "ShellInterrupts",
    "count_as_kernel_code",
    "in_kernel_code",
    "interrupts_execution_of",
]

RESIGNAL_INTERVAL = 0.1
"""Seconds between repeated SIGINTs while an interrupt waits for its target to be executing."""

LOOK_INTERVAL = 0.02
"""Seconds between looks at a subshell thread's frame while an interrupt waits for its target to
be executing (a look is cheap: no signal, no wake-up of the thread)."""

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

_kernel_dirs: tuple[str, ...] = (_PACKAGE_DIR,)
"""Code that counts as the kernel's: async-kernel's, and debugpy's once a debugger runs (a cell
stopped at a breakpoint waits inside debugpy, and a KeyboardInterrupt raised there would end
the debugger's hold on the thread rather than the cell)."""


def count_as_kernel_code(directory: str) -> None:
    """Treat the code under `directory` as the kernel's: interrupts never land in it. Any
    thread; idempotent."""
    global _kernel_dirs
    directory = os.path.join(os.path.abspath(directory), "")
    if directory not in _kernel_dirs:
        _kernel_dirs = (*_kernel_dirs, directory)


def in_kernel_code(frame: FrameType | None, entry: CodeType, *, exact: bool = True) -> bool:
    """True if `frame` is executing async-kernel's own code (between it and `entry`).

    Walking from `frame` towards `entry`, the first frame that is async-kernel's or the user's
    decides: async-kernel's (a module of this package) means yes, unless its function is marked
    interruptible; the user's means no. Frames of other libraries (the standard library, trio,
    zmq) are passed over: they belong to whoever called them.

    Executing the import machinery itself (the innermost frame is importlib's) counts as the
    kernel's too: importlib takes its locks in Python code, and a KeyboardInterrupt raised
    between taking one and the `try` that gives it back leaves it held, so that every later
    import in every other thread waits forever (seen: a subshell interrupted inside
    `run_code`'s own `import bdb`, and the main shell's next import hung). With `exact` (the
    exception is raised in `frame` itself: the SIGINT handler), the code an import runs (a
    module's body, a finder) is interruptible: importlib's frames below it are passed over, and
    its locks are given back by the `with` and `try` blocks the exception passes through.
    Without (`PyThreadState_SetAsyncExc`: it lands at the thread's next bytecode boundary,
    perhaps back in importlib), every importlib frame on the way counts as the kernel's: a
    subshell's cell is interrupted outside any import.
    """
    if frame is not None and frame.f_code.co_filename.startswith(_IMPORT_MACHINERY):
        return frame.f_code is not entry
    if not exact and _inside_an_import(frame, entry):
        return True
    while frame is not None and frame.f_code is not entry:
        code = frame.f_code
        if code in INTERRUPTIBLE:
            return False
        filename = code.co_filename
        if filename.startswith(_kernel_dirs):
            return True
        if not _is_library(filename):
            return False
        frame = frame.f_back
    return False


def _inside_an_import(frame: FrameType | None, entry: CodeType) -> bool:
    """Whether an importlib frame lies between `frame` and `entry`."""
    while frame is not None and frame.f_code is not entry:
        if frame.f_code.co_filename.startswith(_IMPORT_MACHINERY):
            return True
        frame = frame.f_back
    return False


_IMPORT_MACHINERY = "<frozen importlib."
"""The file name of importlib's frozen modules (`_bootstrap`, `_bootstrap_external`)."""


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
    """Every shell's interrupts, and the SIGINT handler (thread-safe).

    `main` is the main shell's (made here, so that the main shell's executor can be made with
    the kernel); [add_shell][async_kernel._kernel.interrupts.InterruptController.add_shell]
    makes a subshell's. [interrupt][async_kernel._kernel.interrupts.InterruptController.interrupt]
    reaches them all.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closing = False
        self._comm_entry: CodeType | None = None
        self._by_thread: dict[int, ShellInterrupts] = {}
        self.main = ShellInterrupts(self, by_signal=True)
        """The main shell's running cell and comm handlers (SIGINT reaches them)."""
        self._shells: list[ShellInterrupts] = [self.main]

    def install(self, shell: Caller, *, comm_entry: CodeType | None = None) -> None:
        """Install the SIGINT handler (main thread only) and bind `main` to the shell caller.

        `comm_entry` is the code of the function that dispatches comm messages to their
        handlers; an interrupt while no cell runs targets the handler running above it. Once,
        before any subshell is added.
        """
        self._comm_entry = comm_entry
        self.main.bind(shell)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.main._on_sigint)

    def uninstall(self) -> None:
        """Give SIGINT back to Python's default handler (main thread only; at shutdown)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def add_shell(self, caller: Caller) -> ShellInterrupts:
        """A subshell's interrupts: its cells and comm handlers run in `caller`. Any thread.

        Interrupts reach it until [remove_shell][async_kernel._kernel.interrupts.InterruptController.remove_shell].
        """
        shell = ShellInterrupts(self, by_signal=False)
        shell.bind(caller)
        with self._lock:
            self._shells.append(shell)
        return shell

    def remove_shell(self, shell: ShellInterrupts) -> None:
        """Stop interrupts reaching a subshell that has ended. Any thread; idempotent."""
        with self._lock:
            if shell in self._shells:
                self._shells.remove(shell)
            if shell.thread_id is not None and self._by_thread.get(shell.thread_id) is shell:
                del self._by_thread[shell.thread_id]

    def _bound(self, shell: ShellInterrupts, thread_id: int) -> None:
        with self._lock:
            self._by_thread[thread_id] = shell

    @property
    def comm_entry(self) -> CodeType | None:
        """The code of the comm dispatch function (see `install`)."""
        return self._comm_entry

    @property
    def closing(self) -> bool:
        """The kernel is shutting down: every cell that starts is cancelled."""
        return self._closing

    @property
    def cancelled(self) -> bool:
        """Whether an interrupt has cancelled the running cell of the shell of this thread.

        In a shell's thread (False elsewhere): the shell's traceback display asks it.
        """
        shell = self._by_thread.get(threading.get_ident())
        return shell is not None and shell.cancelled

    def close(self) -> None:
        """Interrupt every running cell and cancel any cell that starts from now on (shutdown)."""
        self._closing = True
        self.interrupt()

    def interrupt(self) -> None:
        """Interrupt every shell's running cell, else its running comm handler. Any thread."""
        with self._lock:
            shells = list(self._shells)
        for shell in shells:
            shell.interrupt()


class ShellInterrupts:
    """One shell's running cell and comm handlers, and how an interrupt reaches them.

    The main shell's ([InterruptController.main][async_kernel._kernel.interrupts.InterruptController])
    is reached by SIGINT, a subshell's by an asynchronous exception (see the module doc). `cell`
    and `comm_handler` are used in the shell's own thread; `interrupt` and `close` from any.
    """

    def __init__(self, controller: InterruptController, *, by_signal: bool) -> None:
        self._controller = controller
        self._by_signal = by_signal
        self._shell: Caller | None = None
        self.thread_id: int | None = None
        """The ident of the shell's thread (once bound)."""
        self._main_thread_id = threading.main_thread().ident
        self._cell_id: str | None = None
        self._scope: anyio.CancelScope | None = None
        self._comm_running = 0
        # What the armed interrupt may interrupt: RUN_CODE, the comm entry, or None; and for a
        # cell, the scope of the cell it was armed for (a later cell is never hit).
        self._target: CodeType | None = None
        self._target_scope: anyio.CancelScope | None = None
        self._generation = 0
        self._closing = False

    def bind(self, shell: Caller) -> None:
        """Run this shell's cells in `shell` (its caller). Once, before its first cell."""
        self._shell = shell
        thread = shell.thread
        if thread is not None and thread.ident is not None:
            self.thread_id = thread.ident
            self._controller._bound(self, thread.ident)

    @contextlib.contextmanager
    def cell(self, cell_id: str | None) -> Iterator[anyio.CancelScope]:
        """Run a cell inside a cancel scope that `interrupt()` cancels. Shell thread only."""
        with anyio.CancelScope() as scope:
            self._cell_id, self._scope = cell_id, scope
            # Set the scope, then look at `_closing`; `close()` does the reverse. So a cell
            # entering while the kernel shuts down is either cancelled here or seen there.
            if self._closing or self._controller.closing:
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
            if not self._comm_running and self._target is self._controller.comm_entry:
                self._target = None

    @property
    def cancelled(self) -> bool:
        """Whether an interrupt has cancelled the running cell's scope. Shell thread only."""
        scope = self._scope
        return scope is not None and scope.cancel_called

    def close(self) -> None:
        """Interrupt this shell's running cell and cancel any of its cells that starts from now
        on (the subshell is being deleted). Any thread."""
        self._closing = True
        self.interrupt()

    def interrupt(self) -> None:
        """Interrupt the running cell, else the running comm handler, if any. Any thread."""
        shell = self._shell
        if shell is None:
            return
        scope, cell_id = self._scope, self._cell_id
        comm_entry = self._controller.comm_entry
        if scope is not None:
            target: CodeType | None = RUN_CODE

            def cancel_if_same_cell() -> None:
                if self._cell_id == cell_id and self._scope is scope:
                    scope.cancel()

            with contextlib.suppress(RuntimeError):
                shell.call_direct(cancel_if_same_cell)
        elif self._comm_running and comm_entry is not None:
            target = comm_entry
        else:
            return
        self._generation += 1
        generation = self._generation
        self._target_scope = scope
        self._target = target
        if self._by_signal:
            if self._main_thread_id is None or shell.thread is not threading.main_thread():
                self._target = None
                return  # signals reach only the main thread; the cancel scope has to do
            signal.pthread_kill(self._main_thread_id, signal.SIGINT)
            aim = self._resignal
        else:
            aim = self._raise_in_thread
        helper = threading.Thread(
            target=aim, args=(generation,), name="InterruptResignal", daemon=True
        )
        hide_from_debugger(helper)
        helper.start()

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

    def _raise_in_thread(self, generation: int) -> None:
        """Raise KeyboardInterrupt in the subshell's thread once it runs its target's own code,
        looking now and then every `LOOK_INTERVAL` while interrupt `generation` stands."""
        thread_id = self.thread_id
        if thread_id is None:
            return
        pause = threading.Event()
        while True:
            if not self._still_aimed() or self._generation != generation:
                return
            if self._deliver(thread_id):
                return
            if pause.wait(LOOK_INTERVAL):
                return

    def _deliver(self, thread_id: int) -> bool:
        """Raise KeyboardInterrupt in thread `thread_id` if it runs the target's own code now.

        The look, the raise and the second look take microseconds of this thread's time slice
        (ctypes' `pythonapi` calls keep the GIL), far less than the interpreter's switch
        interval, so the target thread can hardly move on in between; the second look withdraws
        the exception if it has. Once raised, it lands at the target's next bytecode boundary:
        in the code just looked at, or at the first instruction of a function it calls, before
        that function has done anything.
        """
        target = self._target
        if target is None or not _runs_target(thread_id, target):
            return False
        if _set_async_exc(thread_id, KeyboardInterrupt) != 1:
            return True  # the thread is gone
        if not _runs_target(thread_id, target):
            _set_async_exc(thread_id, None)
            return False
        self._target = None
        return True

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


def _runs_target(thread_id: int, target: CodeType) -> bool:
    """Whether thread `thread_id` executes the target's own code right now (see the module doc)."""
    frame = sys._current_frames().get(thread_id)
    return interrupts_execution_of(frame, target) and not in_kernel_code(frame, target, exact=False)


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> int:
    """`PyThreadState_SetAsyncExc`: raise `exc` in thread `thread_id` at its next bytecode
    boundary, or withdraw a pending one (`exc` None). The number of threads it changed."""
    arg = None if exc is None else ctypes.py_object(exc)
    changed: int = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), arg)
    return changed
