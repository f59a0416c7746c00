"""The trio engine: loop handles, wakers and call tasks for callers running trio.

Async calls run as children of the caller's task group (through the scheduler's
`run_async`, which gives each its own cancel scope), so the task group cancels them when the
caller stops. This module imports trio; `engine_for("trio")` loads it on first use only.

Thread model: the objects made here belong to the trio run they were made in; only
`LoopHandle.call_soon_threadsafe` may be called from other threads. See
`async_kernel._caller.engine` for the contract.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import anyio.abc
import trio

from async_kernel._caller.engine import Register
from async_kernel.wire import Backend

if TYPE_CHECKING:
    from async_kernel._caller.scheduler import Scheduler
    from async_kernel.pending import Pending

__all__ = ["TrioEngine"]


class _LoopHandle:
    __slots__ = ("_token", "thread_id")

    def __init__(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self.thread_id = threading.get_ident()

    def call_soon_threadsafe(self, func: Callable[..., Any], *args: Any) -> None:
        try:
            self._token.run_sync_soon(func, *args)
        except trio.RunFinishedError as e:
            raise RuntimeError("the trio run has finished") from e

    call_soon = call_soon_threadsafe


class _Waker:
    __slots__ = ("_task",)

    def __init__(self) -> None:
        self._task: trio.lowlevel.Task | None = None

    async def wait(self) -> None:
        self._task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._task = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def wake(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            trio.lowlevel.reschedule(task)


class _CallTasks:
    """A caller's async calls as children of its task group (see the module doc)."""

    __slots__ = ("_run", "_start_soon")

    def __init__(self, scheduler: Scheduler, task_group: anyio.abc.TaskGroup) -> None:
        self._start_soon = task_group.start_soon
        self._run = scheduler.run_async

    def start(
        self, pending: Pending[Any], awaitable: Awaitable[Any], context: contextvars.Context
    ) -> None:
        context.run(self._start_soon, self._run, pending, awaitable)

    async def cancel_all(self) -> None:
        return  # children of the task group: cancelled with it


class TrioEngine:
    """The engine of trio (see `async_kernel._caller.engine.Engine`)."""

    __slots__ = ()

    backend: Backend = "trio"

    def loop_handle(self) -> _LoopHandle:
        return _LoopHandle()

    def waker(self) -> _Waker:
        return _Waker()

    def call_tasks(self, scheduler: Scheduler, task_group: anyio.abc.TaskGroup) -> _CallTasks:
        return _CallTasks(scheduler, task_group)

    def spawn_home_task(self, main: Callable[[], Coroutine[Any, Any, None]], name: str) -> object:
        return trio.lowlevel.spawn_system_task(main, name=name)

    def split_cancellation(
        self, exc: BaseException
    ) -> tuple[BaseException | None, BaseException | None]:
        """trio's cancellation of the current task, and the rest of `exc`.

        Every `trio.Cancelled` is genuine: user code cannot make one.
        """
        if isinstance(exc, BaseExceptionGroup):
            return exc.split(trio.Cancelled)
        if isinstance(exc, trio.Cancelled):
            return exc, None
        return None, exc

    async def wait_for_wakeup(self, register: Register) -> None:
        event = trio.Event()
        token = trio.lowlevel.current_trio_token()
        trio_thread = threading.get_ident()

        def wake() -> None:
            if threading.get_ident() == trio_thread:
                event.set()
            else:
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(event.set)

        unregister = register(wake)
        try:
            await event.wait()
        finally:
            unregister()
