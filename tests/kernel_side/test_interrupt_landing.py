"""Where the kernel's SIGINT handler lets a KeyboardInterrupt land: the user's code, never
async-kernel's own (a lock or a wake-up flag could be left behind), except its blocking waits
marked interruptible (so that a cell blocked in `wait_sync` or `input()` can be interrupted)."""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import threading
from types import FrameType

from async_kernel import Pending
from async_kernel._kernel.interrupts import in_kernel_code, interrupts_execution_of


def _entry() -> FrameType:
    """Stands for IPython's `run_code`: what the walk stops at."""
    return sys._getframe()


def test_a_frame_of_user_code_may_be_interrupted() -> None:
    frame = sys._getframe()

    assert not in_kernel_code(frame, _entry.__code__)


def test_a_frame_of_async_kernel_code_may_not() -> None:
    seen: list[FrameType] = []
    done: Pending[int] = Pending()
    done.set_result(1)
    # A done Pending runs the callback at once, from async-kernel's own code.
    done.add_done_callback(lambda _: seen.append(sys._getframe().f_back))  # type: ignore[arg-type]

    [kernel_frame] = seen
    assert kernel_frame.f_code.co_filename.endswith("pending.py")
    assert in_kernel_code(kernel_frame, _entry.__code__)


def test_a_library_frame_called_by_user_code_may_be_interrupted() -> None:
    seen: list[FrameType] = []

    class Spy:
        def __deepcopy__(self, memo: object) -> Spy:
            seen.append(sys._getframe().f_back)  # type: ignore[arg-type]
            return self

    copy.deepcopy(Spy())  # copy.py (the standard library) calls __deepcopy__

    [library_frame] = seen
    assert library_frame.f_code.co_filename == copy.__file__
    assert not in_kernel_code(library_frame, _entry.__code__)


def test_a_library_frame_called_by_async_kernel_code_may_not() -> None:
    seen: list[FrameType] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(sys._getframe().f_back)  # type: ignore[arg-type]

    def fails(_: object) -> None:
        raise ValueError("logged by the Pending")

    logger = logging.getLogger("async_kernel")
    spy = Spy()
    logger.addHandler(spy)
    try:
        done: Pending[int] = Pending()
        done.set_result(1)
        done.add_done_callback(fails)  # the Pending logs what the callback raised
    finally:
        logger.removeHandler(spy)

    library_frame = seen[0]
    assert library_frame.f_code.co_filename == logging.__file__
    assert in_kernel_code(library_frame, _entry.__code__)


def test_a_blocking_wait_marked_interruptible_may_be_interrupted() -> None:
    """What `Pending.wait_sync` (and `input()`) block in: an interrupt may stop a cell there."""
    seen: list[FrameType] = []

    class SpyEvent(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            seen.append(sys._getframe().f_back)  # type: ignore[arg-type]
            return super().wait(timeout)

    waiter: Pending[int] = Pending()
    timer = threading.Timer(0.01, waiter.set_result, (3,))  # made before the spy is in place
    saved = threading.Event
    threading.Event = SpyEvent  # type: ignore[misc]
    try:
        timer.start()
        assert waiter.wait_sync(10) == 3
    finally:
        threading.Event = saved  # type: ignore[misc]
    timer.join()

    [blocking] = seen
    assert blocking.f_code.co_name == "_block"
    assert not in_kernel_code(blocking, _entry.__code__)


def test_only_frames_above_the_entry_are_its_execution() -> None:
    def entry() -> tuple[FrameType, FrameType]:
        return sys._getframe(), inner()

    def inner() -> FrameType:
        return sys._getframe()

    entry_frame, inner_frame = entry()

    assert interrupts_execution_of(inner_frame, entry.__code__)
    assert not interrupts_execution_of(entry_frame, entry.__code__)
    assert not interrupts_execution_of(sys._getframe(), entry.__code__)


def test_the_import_machinery_may_not_but_what_it_runs_may() -> None:
    """Executing importlib's frozen code counts as the kernel's (it takes its locks in Python
    code); code an import calls (here a finder, as a module's body) is interruptible."""
    seen: list[FrameType] = []

    class Finder:
        def find_spec(self, name: str, path: object = None, target: object = None) -> None:
            if name == "an_async_kernel_test_module_that_does_not_exist":
                seen.append(sys._getframe())

    finder = Finder()
    sys.meta_path.insert(0, finder)
    try:
        with contextlib.suppress(ModuleNotFoundError):
            import an_async_kernel_test_module_that_does_not_exist  # type: ignore[import-not-found]  # noqa: F401
    finally:
        sys.meta_path.remove(finder)
    [finder_frame] = seen
    importlib_frame = finder_frame.f_back
    assert importlib_frame is not None
    assert importlib_frame.f_code.co_filename.startswith("<frozen importlib")
    assert in_kernel_code(importlib_frame, _entry.__code__)
    assert not in_kernel_code(finder_frame, _entry.__code__)
    # Raised at the thread's next bytecode boundary instead (a subshell's interrupt), it could
    # land back in importlib: anything an import runs counts as the kernel's.
    assert in_kernel_code(finder_frame, _entry.__code__, exact=False)
    assert not in_kernel_code(sys._getframe(), _entry.__code__, exact=False)
