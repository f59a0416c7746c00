"""The scheduler of one caller: its inbox, the drain that starts calls, and their counters.

Work arrives in two deques: the *inbox* of Pendings (`call_soon`, `call_later`; what
`scheduled` counts) and the *direct* calls (`call_direct`: short bookkeeping, no Pending).
`submit` appends from any thread and, unless one is pending already, schedules one `drain` in
the loop: a plain loop callback, not a task, which saves a loop iteration per call over waking a
scheduler task. `drain` runs the direct calls and starts each Pending: a sync function runs
right there, an async one gets a task from the engine's `CallTasks`, a `call_later` a task of
the caller's task group that sleeps first.

Thread model: `submit`, `call_direct`, `call_in_loop`, `schedule_drain` and `cancel_inbox` may
be called from any thread; everything else runs in the loop thread. `state`, `active`,
`bookkeeping`, `delayed` and the deques are plain attributes: the loop thread is the only one
to change the counters, and `Caller.snapshot()` reads them without a lock. The state may be
changed by another thread at any moment (see `async_kernel._caller.lifecycle`), so code that
must see such a change reads `self.state` afresh rather than trusting an earlier read.

User code never ends the loop: whatever a call raises, any BaseException included, goes into
its Pending, or is logged for a direct call. Only the backend's genuine cancellation of a task
propagates, to the cancel scope that asked for it.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import sniffio

from async_kernel._caller.lifecycle import State, stopped_error

if TYPE_CHECKING:
    from async_kernel._caller.engine import CallTasks, Engine, LoopHandle, Waker
    from async_kernel.pending import Pending

__all__ = ["DirectCall", "Scheduler", "current_pending"]

logger = logging.getLogger("async_kernel.caller")

current_pending: contextvars.ContextVar[Pending[Any] | None] = contextvars.ContextVar(
    "async_kernel_current_pending", default=None
)
"""The Pending of the call running in the current context (`Caller.current_pending()`)."""

DirectCall = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class Scheduler:
    """Starts one caller's calls in its loop (see the module doc for the thread model)."""

    __slots__ = (
        "active",
        "backend",
        "bookkeeping",
        "delayed",
        "direct",
        "engine",
        "handle",
        "inbox",
        "name",
        "ready",
        "state",
        "task_group",
        "tasks",
        "wake_pending",
        "waker",
    )

    def __init__(self, name: str, engine: Engine) -> None:
        self.name = name
        """The caller's name, for error messages."""
        self.engine = engine
        self.backend = engine.backend
        self.state = State.STARTING
        self.handle: LoopHandle | None = None
        """Set inside the loop before anyone may schedule into it; None until then."""
        self.waker: Waker | None = None
        """Parks the home task (`run`) until the caller is stopping."""
        self.task_group: anyio.abc.TaskGroup | None = None
        """Open while `run` runs: None before (work waits for the first drain) and after."""
        self.tasks: CallTasks | None = None
        self.inbox: deque[Pending[Any]] = deque()
        self.direct: deque[DirectCall] = deque()
        self.wake_pending = False
        """True from a `submit` that scheduled a drain until that drain starts."""
        self.ready = threading.Event()
        """Set once the scheduler accepts work, or the caller has stopped."""
        self.delayed = 0
        """`call_later` calls still in their delay (counted as scheduled)."""
        self.active = 0
        """Calls started and not finished (queued calls included), but for `bookkeeping`."""
        self.bookkeeping = 0
        """Calls of bookkeeping queues (`Caller._queue_bookkeeping`) started and not finished.

        Counted apart from `active`, which is then user work alone, read in one go (exact, with
        no window between two counters); `Caller.snapshot()` reports their sum as `active`."""

    # --- any thread ----------------------------------------------------------------------------

    def is_own_thread(self) -> bool:
        """True in the loop thread. Any thread."""
        handle = self.handle
        return handle is not None and handle.thread_id == threading.get_ident()

    def submit(self, item: Any, queue: deque[Any]) -> None:
        """Put `item` on `queue` (the inbox or the direct deque) and make sure a drain follows.

        Any thread. Raises CallerStoppedError if the caller is stopping or stopped.
        """
        state = self.state
        if state is State.STOPPING or state is State.STOPPED:
            raise stopped_error(self.name)
        queue.append(item)
        if not self.wake_pending:
            self.wake_pending = True
            handle = self.handle
            if handle is not None:  # None while starting: the first drain will see the item
                # `schedule_drain`, inlined: this is the path of every call.
                try:
                    if handle.thread_id == threading.get_ident():
                        handle.call_soon(self.drain)
                    else:
                        handle.call_soon_threadsafe(self.drain)
                except RuntimeError:  # the loop has closed under us
                    pass
        if self.state is State.STOPPED:  # lost a race with the caller's end: cancel, never strand
            self.cancel_inbox()

    def call_direct(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Run `func(*args, **kwargs)` inside the next drain (see `Caller.call_direct`). Any thread."""
        self.submit((func, args, kwargs), self.direct)

    def call_in_loop(self, func: Callable[[], Any]) -> None:
        """Run `func()` in the loop thread: now if this is it, else soon. Never raises."""
        if self.is_own_thread():
            func()
        else:
            with contextlib.suppress(RuntimeError):  # CallerStoppedError, a closed loop
                self.submit((func, (), {}), self.direct)

    def schedule_drain(self, handle: LoopHandle) -> bool:
        """Have the loop of `handle` (this scheduler's) drain soon; False if that loop is gone.

        Any thread. `stop()` uses it so that the loop sees the STOPPING state.
        """
        self.wake_pending = True
        try:
            if handle.thread_id == threading.get_ident():
                handle.call_soon(self.drain)
            else:
                handle.call_soon_threadsafe(self.drain)
        except RuntimeError:
            return False
        return True

    def mark_running(self) -> None:
        """Accept work now, before `run` has started (it drains first thing). Any thread."""
        self.state = State.RUNNING
        self.ready.set()

    def cancel_inbox(self) -> None:
        """Drop the direct calls and cancel every Pending not started. Any thread."""
        self.direct.clear()
        inbox = self.inbox
        while True:
            try:
                item = inbox.popleft()
            except IndexError:
                return
            item.cancel(f"Caller {self.name!r} stopped")

    # --- loop thread ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Hold the task group of the caller's calls open until the caller is stopping.

        The scheduler's part of the caller's home task: marks the caller running, drains what
        arrived before, parks until `stop()`, then cancels every call still running.
        """
        engine = self.engine
        try:
            if self.handle is None:
                self.handle = engine.loop_handle()
            self.waker = waker = engine.waker()
            async with anyio.create_task_group() as tg:
                self.tasks = tasks = engine.call_tasks(self, tg)
                self.task_group = tg
                if self.state is State.STARTING:
                    self.state = State.RUNNING
                self.ready.set()
                self.drain()  # what arrived before the loop was ready
                while self.state is not State.STOPPING:
                    await waker.wait()
                tg.cancel_scope.cancel()
                await tasks.cancel_all()
        finally:
            self.task_group = None

    def drain(self) -> None:
        """Start everything in the inbox. A loop callback, or called by `run`."""
        if self.task_group is None:  # `run` has not started yet: it drains first thing
            return
        self.wake_pending = False
        inbox, direct = self.inbox, self.direct
        # Once stopping, start nothing more: what is left is cancelled by the caller's end.
        while (inbox or direct) and self.state is not State.STOPPING:
            if direct:
                while direct:
                    func, args, kwargs = direct.popleft()
                    try:
                        func(*args, **kwargs)
                    except BaseException:  # KeyboardInterrupt too: the loop must go on
                        logger.exception("call_direct of %r raised", func)
                if self.stopping():  # a direct call may have stopped the caller
                    break
            if inbox:
                self.start(inbox.popleft())
        if self.stopping() and self.waker is not None:
            self.waker.wake()

    def stopping(self) -> bool:
        """True once `stop()` has been asked, until the caller's end: a fresh read of `state`.

        For the checks that follow code which may have stopped the caller (a direct call, the
        calls a drain started), where an earlier read of `state` no longer holds.
        """
        return self.state is State.STOPPING

    def start(self, pending: Pending[Any]) -> None:
        """Start one call of the inbox: run it if sync, else start its task."""
        if not pending._claim_start():
            return
        context = self.own_context(pending._context or contextvars.copy_context())
        if pending._delay > 0:
            self.delayed += 1
            assert self.task_group is not None
            context.run(self.task_group.start_soon, self.run_async, pending, None)
            return
        func = pending._func
        assert func is not None
        try:
            result = context.run(self._call_sync, pending, func)
        except BaseException as exc:
            pending._set_exception(exc)
            return
        if not inspect.isawaitable(result):
            pending._set_result(result)
        else:
            assert self.tasks is not None
            self.tasks.start(pending, result, context)

    def own_context(self, context: contextvars.Context) -> contextvars.Context:
        """Make `context`, copied in the submitting thread, name this caller's backend.

        The copy carries the submitter's sniffio library name (`anyio.run` sets it), which would
        make sniffio and anyio see the wrong backend here (trio inside an asyncio caller).
        """
        context.run(sniffio.current_async_library_cvar.set, self.backend)
        return context

    def _call_sync(self, pending: Pending[Any], func: Callable[..., Any]) -> Any:
        current_pending.set(pending)
        self.active += 1
        try:
            return func(*pending._args, **pending._kwargs)
        finally:
            self.active -= 1

    async def run_async(self, pending: Pending[Any], awaitable: Awaitable[Any] | None) -> None:
        """Await `awaitable` (or, for a call_later, sleep and call) in its own cancel scope.

        A task of the caller's task group. Completes `pending`; re-raises only the backend's
        genuine cancellation of this task.
        """
        current_pending.set(pending)
        counted = awaitable is not None  # a call_later counts as active once its delay is over
        if counted:
            self.active += 1
        cancelled_exc = anyio.get_cancelled_exc_class()

        def uncount() -> None:
            # Called before the Pending completes: whoever sees it done sees it no longer active.
            nonlocal counted
            if counted:
                self.active -= 1
                counted = False

        try:
            with anyio.CancelScope() as scope:
                pending._canceller = lambda: self.call_in_loop(scope.cancel)
                if pending._cancel_requested:
                    scope.cancel()
                if awaitable is None:  # a call_later: wait, then call
                    try:
                        await anyio.sleep(pending._delay)
                    finally:
                        self.delayed -= 1
                    self.active += 1
                    counted = True
                    func = pending._func
                    assert func is not None
                    result = func(*pending._args, **pending._kwargs)
                    if inspect.isawaitable(result):
                        result = await result
                else:
                    result = await awaitable
        except BaseException as exc:
            uncount()
            cancellation, error = self.engine.split_cancellation(exc)
            if cancellation is None:
                if isinstance(exc, cancelled_exc):  # asyncio: its own, nobody cancelled us
                    pending._set_cancelled()
                else:
                    pending._set_exception(exc)
                return
            if error is None:
                pending._set_cancelled()
            else:
                pending._set_exception(error)
            if cancellation is exc:
                raise
            raise cancellation from None
        else:
            uncount()
            if scope.cancelled_caught:
                pending._set_cancelled()
            else:
                pending._set_result(result)
        finally:
            uncount()
