"""The asyncio engine: loop handles, wakers and call tasks for callers running asyncio.

Async calls run as plain asyncio tasks, cancelled with `Task.cancel`: far cheaper than an anyio
task-group child with its own cancel scope, and they cancel the same way. Such a task is not a
child of the caller's task group, so `CallTasks.cancel_all` cancels them when the caller stops.

Thread model: the objects made here belong to the loop they were made in; only
`LoopHandle.call_soon_threadsafe` may be called from other threads. See
`async_kernel._caller.engine` for the contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from async_kernel._caller.engine import Register
from async_kernel._caller.scheduler import current_pending
from async_kernel.wire import Backend

if TYPE_CHECKING:
    from async_kernel._caller.scheduler import Scheduler
    from async_kernel.pending import Pending

__all__ = ["AsyncioEngine"]


class _LoopHandle:
    __slots__ = ("_loop", "thread_id")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()

    def call_soon_threadsafe(self, func: Callable[..., Any], *args: Any) -> None:
        self._loop.call_soon_threadsafe(func, *args)

    def call_soon(self, func: Callable[..., Any], *args: Any) -> None:
        self._loop.call_soon(func, *args)


class _Waker:
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


class _CallTasks:
    """A caller's async calls as native asyncio tasks (see the module doc)."""

    __slots__ = ("_loop", "_scheduler", "_tasks")

    def __init__(self, scheduler: Scheduler) -> None:
        self._loop = asyncio.get_running_loop()
        self._scheduler = scheduler
        self._tasks: set[asyncio.Task[None]] = set()

    def start(
        self, pending: Pending[Any], awaitable: Awaitable[Any], context: contextvars.Context
    ) -> None:
        task = self._loop.create_task(self._run(pending, awaitable), context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, pending: Pending[Any], awaitable: Awaitable[Any]) -> None:
        task = asyncio.current_task()
        assert task is not None
        scheduler = self._scheduler
        current_pending.set(pending)
        pending._canceller = lambda: scheduler.call_in_loop(task.cancel)
        if pending._cancel_requested:
            task.cancel()
        scheduler.active += 1
        try:
            result = await awaitable
        except asyncio.CancelledError:
            scheduler.active -= 1
            pending._set_cancelled()  # the task is ours and ends here: nothing to re-raise to
        except BaseException as exc:
            scheduler.active -= 1
            pending._set_exception(exc)
        else:
            scheduler.active -= 1
            pending._set_result(result)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks)


class AsyncioEngine:
    """The engine of asyncio (see `async_kernel._caller.engine.Engine`)."""

    __slots__ = ()

    backend: Backend = "asyncio"

    def loop_handle(self) -> _LoopHandle:
        return _LoopHandle()

    def waker(self) -> _Waker:
        return _Waker()

    def call_tasks(self, scheduler: Scheduler, task_group: anyio.abc.TaskGroup) -> _CallTasks:
        return _CallTasks(scheduler)

    def spawn_home_task(self, main: Callable[[], Coroutine[Any, Any, None]], name: str) -> object:
        return asyncio.get_running_loop().create_task(main())

    def split_cancellation(
        self, exc: BaseException
    ) -> tuple[BaseException | None, BaseException | None]:
        """asyncio's cancellation of the current task, and the rest of `exc`.

        A `CancelledError` is genuine only while somebody asks to cancel the current task
        (``Task.cancelling() > 0``). One that user code raises while nobody cancels the task
        (it awaited a future somebody else cancelled, say) is an error of that code, in `rest`.
        """
        task = asyncio.current_task()
        if task is None or task.cancelling() == 0:
            return None, exc
        if isinstance(exc, BaseExceptionGroup):
            return exc.split(asyncio.CancelledError)
        if isinstance(exc, asyncio.CancelledError):
            return exc, None
        return None, exc

    async def wait_for_wakeup(self, register: Register) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        thread_id = threading.get_ident()

        def resolve() -> None:
            if not future.done():
                future.set_result(None)

        def wake() -> None:
            if threading.get_ident() == thread_id:
                resolve()
            else:
                # RuntimeError: the loop closed, so nobody is waiting any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(resolve)

        unregister = register(wake)
        try:
            await future
        finally:
            unregister()
