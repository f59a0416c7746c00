"""Backend plumbing: which event loop runs in a thread, and how to wake it from any thread.

Everything here is private machinery behind [Caller][async_kernel.Caller] and
[Pending][async_kernel.Pending]. Two small objects per backend:

- a *loop handle* (`LoopHandle`), created inside a running loop, that schedules a plain
  callback into that loop from any thread (`call_soon_threadsafe`) or from the loop's own
  thread without a wake-up write (`call_soon`);
- a *waker* (`Waker`), owned by one task, that parks the task until `wake()` is called from a
  callback in the same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, Protocol

import sniffio

from async_kernel.wire import Backend


def current_backend() -> Backend | None:
    """The backend of the event loop running in this thread, or None outside a loop."""
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None
    if library == "asyncio":
        return "asyncio"
    if library == "trio":
        return "trio"
    return None


class LoopHandle(Protocol):
    """A reference to a running event loop that can be handed to other threads."""

    thread_id: int

    def call_soon_threadsafe(self, func: Callable[..., Any], *args: Any) -> None:
        """Run `func(*args)` in the loop soon; callable from any thread. RuntimeError once closed."""

    def call_soon(self, func: Callable[..., Any], *args: Any) -> None:
        """Like call_soon_threadsafe, but only from the loop's own thread (cheaper)."""


class Waker(Protocol):
    """Parks one task until woken from a callback running in the same loop."""

    async def wait(self) -> None:
        """Suspend until `wake` is called (cancellable)."""

    def wake(self) -> None:
        """Resume the parked task, if any; a no-op when nothing is parked. Loop thread only."""


class _AsyncioHandle:
    __slots__ = ("_loop", "thread_id")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()

    def call_soon_threadsafe(self, func: Callable[..., Any], *args: Any) -> None:
        self._loop.call_soon_threadsafe(func, *args)

    def call_soon(self, func: Callable[..., Any], *args: Any) -> None:
        self._loop.call_soon(func, *args)


class _AsyncioWaker:
    __slots__ = ("_future", "_loop")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        future = self._future = self._loop.create_future()
        try:
            await future
        finally:
            self._future = None

    def wake(self) -> None:
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)


class _TrioHandle:
    __slots__ = ("_token", "thread_id")

    def __init__(self) -> None:
        import trio

        self._token = trio.lowlevel.current_trio_token()
        self.thread_id = threading.get_ident()

    def call_soon_threadsafe(self, func: Callable[..., Any], *args: Any) -> None:
        import trio

        try:
            self._token.run_sync_soon(func, *args)
        except trio.RunFinishedError as e:
            raise RuntimeError("the trio run has finished") from e

    call_soon = call_soon_threadsafe


class _TrioWaker:
    __slots__ = ("_task",)

    def __init__(self) -> None:
        self._task: Any = None

    async def wait(self) -> None:
        import trio

        self._task = trio.lowlevel.current_task()

        def abort(_: Any) -> Any:
            self._task = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def wake(self) -> None:
        import trio

        task, self._task = self._task, None
        if task is not None:
            trio.lowlevel.reschedule(task)


def split_cancellation(
    exc: BaseException, backend: Backend
) -> tuple[BaseException | None, BaseException | None]:
    """Split `exc`, caught in a task of `backend`, into `(cancellation, rest)`.

    `cancellation` is the backend's cancellation of the current task, which must be re-raised so
    that the cancel scope that asked for it (or the event loop) sees it; `rest` is what user code
    raised of its own, None if nothing. An exception group is split by member.

    - trio: every `trio.Cancelled` is genuine (user code cannot make one).
    - asyncio: a `CancelledError` is genuine only while somebody asks to cancel the current task
      (``Task.cancelling() > 0``). One that user code raises while nobody cancels the task (it
      awaited a future somebody else cancelled, say) is an error of that code, in `rest`.

    Call it in the task that caught `exc`, before anything else can uncancel that task.
    """
    if backend == "asyncio":
        task = asyncio.current_task()
        if task is None or task.cancelling() == 0:
            return None, exc
        cancelled: type[BaseException] = asyncio.CancelledError
    else:
        import trio

        cancelled = trio.Cancelled
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(cancelled)
    if isinstance(exc, cancelled):
        return exc, None
    return None, exc


def loop_handle(backend: Backend) -> LoopHandle:
    """A handle to the loop running in this thread (call from inside that loop)."""
    return _AsyncioHandle() if backend == "asyncio" else _TrioHandle()


def make_waker(backend: Backend) -> Waker:
    """A waker for the current task (call from inside the loop)."""
    return _AsyncioWaker() if backend == "asyncio" else _TrioWaker()


async def wait_for_wakeup(register: Callable[[Callable[[], None]], Callable[[], None]]) -> None:
    """Suspend the current task until the thread-safe wake function passed to `register` is called.

    `register(wake)` arranges for `wake()` to be called from any thread and returns a function
    that withdraws that arrangement; it is called when the wait ends either way (on cancellation
    too, so nothing is left registered). A `wake()` that comes after the wait ended is harmless.
    """
    backend = current_backend()
    if backend == "asyncio":
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        thread_id = threading.get_ident()

        def resolve() -> None:
            if not future.done():
                future.set_result(None)

        def wake_asyncio() -> None:
            if threading.get_ident() == thread_id:
                resolve()
            else:
                # RuntimeError: the loop closed, so nobody is waiting any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(resolve)

        unregister = register(wake_asyncio)
        try:
            await future
        finally:
            unregister()
    elif backend == "trio":
        import trio

        event = trio.Event()
        token = trio.lowlevel.current_trio_token()
        trio_thread = threading.get_ident()

        def wake_trio() -> None:
            if threading.get_ident() == trio_thread:
                event.set()
            else:
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(event.set)

        unregister = register(wake_trio)
        try:
            await event.wait()
        finally:
            unregister()
    else:
        raise RuntimeError("awaiting requires a running asyncio or trio event loop")
