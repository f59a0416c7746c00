"""What an event-loop backend offers the Caller machinery, and how to find the engine in use.

An *engine* is one object per backend (`asyncio_engine.AsyncioEngine`,
`trio_engine.TrioEngine`), the way anyio keeps a module per backend in `anyio._backends`: the
scheduler, the queues and [Pending][async_kernel.Pending] ask the engine and never branch on the
backend's name. Engines hold no state; what belongs to one running loop comes from the
engine's factories, called inside that loop:

- a *loop handle* (`LoopHandle`) schedules a plain callback into its loop from any thread
  (`call_soon_threadsafe`) or, without a wake-up write, from the loop's own thread (`call_soon`);
- a *waker* (`Waker`), owned by one task, parks the task until `wake()` is called from a
  callback in the same loop;
- the *call tasks* (`CallTasks`) of a caller start the task of each async call and, when the
  caller stops, cancel those its task group does not cancel by itself.

Thread model: `engine_for` and `wait_for_wakeup` may be called from any thread (two threads
loading one engine at once may each make one; either serves, engines being stateless). The objects
an engine makes are used as their docstrings say, mostly in their own loop's thread.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

import sniffio

from async_kernel.wire import Backend

if TYPE_CHECKING:
    import anyio.abc

    from async_kernel._caller.scheduler import Scheduler
    from async_kernel.pending import Pending

__all__ = [
    "CallTasks",
    "Engine",
    "LoopHandle",
    "Register",
    "Waker",
    "current_backend",
    "engine_for",
    "wait_for_wakeup",
]

Register = Callable[[Callable[[], None]], Callable[[], None]]
"""``register(wake) -> unregister``: arranges for `wake()` to be called from any thread."""


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


class CallTasks(Protocol):
    """The tasks of one caller's async calls, in the caller's loop. Loop thread only."""

    def start(
        self, pending: Pending[Any], awaitable: Awaitable[Any], context: contextvars.Context
    ) -> None:
        """Start a task that awaits `awaitable` in `context` and completes `pending` with it.

        The task counts as active on the scheduler while it runs, makes `pending.cancel()`
        cancel it, and never lets what the awaitable raises escape (only the backend's genuine
        cancellation of the task, to the cancel scope that asked for it).
        """

    async def cancel_all(self) -> None:
        """Cancel the tasks the caller's task group does not cancel, and wait until they end."""


class Engine(Protocol):
    """What one backend offers; the factories are called inside a running loop of it."""

    backend: Backend

    def loop_handle(self) -> LoopHandle:
        """A handle to the loop running in this thread."""

    def waker(self) -> Waker:
        """A waker for the current task."""

    def call_tasks(self, scheduler: Scheduler, task_group: anyio.abc.TaskGroup) -> CallTasks:
        """The call tasks of `scheduler`, whose task group (in this loop) is `task_group`."""

    def spawn_home_task(self, main: Callable[[], Coroutine[Any, Any, None]], name: str) -> object:
        """Run `main()` as a task of this thread's running loop, outside every user cancel scope.

        Returns what must be kept to keep the task alive (asyncio holds tasks weakly).
        """

    def split_cancellation(
        self, exc: BaseException
    ) -> tuple[BaseException | None, BaseException | None]:
        """Split `exc`, caught in a task of this backend, into `(cancellation, rest)`.

        `cancellation` is the backend's cancellation of the current task, which must be
        re-raised so that the cancel scope that asked for it (or the event loop) sees it;
        `rest` is what user code raised of its own, None if nothing. An exception group is
        split by member. Call it in the task that caught `exc`, before anything else can
        uncancel that task.
        """

    def wait_for_wakeup(self, register: Register) -> Awaitable[None]:
        """Suspend the current task until the wake function passed to `register` is called.

        `register(wake)` arranges for `wake()` to be called from any thread and returns a
        function that withdraws that arrangement; it is called when the wait ends either way
        (on cancellation too, so nothing is left registered). A `wake()` that comes after the
        wait ended is harmless.
        """


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


_engines: dict[str, Engine] = {}
"""The engines loaded so far, by backend name (the name sniffio reports)."""


def engine_for(backend: Backend) -> Engine:
    """The engine of `backend`, its module imported on first use (so trio loads only if used)."""
    engine = _engines.get(backend)
    if engine is None:
        engine = _engines[backend] = _load(backend)
    return engine


def _load(backend: Backend) -> Engine:
    if backend == "asyncio":
        from async_kernel._caller.asyncio_engine import AsyncioEngine

        return AsyncioEngine()
    from async_kernel._caller.trio_engine import TrioEngine

    return TrioEngine()


def wait_for_wakeup(register: Register) -> Awaitable[None]:
    """Wait, in the current task, until the wake function passed to `register` is called.

    See `Engine.wait_for_wakeup`; this picks the engine of the loop running in this thread.
    Await the result at once.

    Raises:
        RuntimeError: no asyncio or trio event loop runs in this thread.
    """
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        library = None
    engine = _engines.get(library) if library is not None else None
    if engine is None:
        backend = current_backend()
        if backend is None:
            raise RuntimeError("awaiting requires a running asyncio or trio event loop")
        engine = engine_for(backend)
    return engine.wait_for_wakeup(register)
