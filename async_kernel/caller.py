"""[Caller][async_kernel.Caller]: one event loop per thread, with scheduling, worker pools and queues.

A Caller owns a scheduler task in one thread's event loop (asyncio or trio). Any thread can hand
it work; the work runs in that loop and its outcome comes back as a [Pending][async_kernel.Pending].

Thread model: the public methods of Caller may be called from any thread unless a docstring says
otherwise. State that only the loop thread mutates (counters, queue rows) is read by
`snapshot()` without locks, so a snapshot is cheap and never waits for a busy loop. The queue
table and the queues' items are shared with submitting threads under the caller's queue lock
(see `async_kernel._function_queue`).

User code never ends a caller's loop: whatever a scheduled function raises, any BaseException
(KeyboardInterrupt, SystemExit, GeneratorExit, ...) included, goes into its Pending, or is
logged where there is none (queued calls, `call_direct`, done callbacks). Only the backend's
genuine cancellation of a task propagates, to the cancel scope that asked for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import inspect
import itertools
import logging
import threading
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, ClassVar, Literal, ParamSpec, TypeVar, overload

import anyio
import anyio.abc
import sniffio

from async_kernel._backend import (
    LoopHandle,
    Waker,
    current_backend,
    loop_handle,
    make_waker,
    split_cancellation,
)
from async_kernel._function_queue import FunctionQueue, QueueItem
from async_kernel.pending import Pending, ThreadsafeEvent
from async_kernel.wire import Backend, CallerLifecycle, CallerRow, validate_backend

__all__ = ["Caller", "CallerStoppedError"]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("async_kernel.caller")

_current_pending: contextvars.ContextVar[Pending[Any] | None] = contextvars.ContextVar(
    "async_kernel_current_pending", default=None
)

ReturnWhen = Literal["FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED"]


class CallerStoppedError(RuntimeError):
    """Raised when work is scheduled on a caller that is stopping or stopped."""


class _State(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"

    @property
    def lifecycle(self) -> CallerLifecycle:
        return _LIFECYCLE[self]


_LIFECYCLE: dict[_State, CallerLifecycle] = {
    _State.STARTING: "starting",
    _State.RUNNING: "running",
    _State.STOPPING: "stopping",
    _State.STOPPED: "stopped",
}


_DirectCall = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _HybridGet:
    """`Caller.get` is a classmethod on the class and a method on an instance (parent)."""

    def __get__(self, instance: Caller | None, owner: type[Caller]) -> Callable[..., Caller]:
        def get(
            *,
            name: str | None = None,
            thread: threading.Thread | None = None,
            backend: str | None = None,
            protected: bool = False,
        ) -> Caller:
            return owner._get(
                parent=instance, name=name, thread=thread, backend=backend, protected=protected
            )

        get.__doc__ = "Return a running caller; see the `Caller.get` documentation."
        return get


class Caller:
    """A thread's event loop, reachable from every thread.

    Obtain callers with [Caller.get][async_kernel.Caller.get], never by constructing one. There is
    at most one caller per thread. Callers created in new threads are daemon threads that run until
    [stop][async_kernel.Caller.stop]ped; a caller created for an existing loop
    (``Caller.get()`` inside it) stops when that loop ends.
    """

    max_idle_workers: int = 4
    """How many idle `to_thread` workers a caller keeps for reuse (class default; settable per caller)."""

    _registry_lock: ClassVar[threading.RLock] = threading.RLock()
    _by_thread: ClassVar[dict[int, Caller]] = {}
    _by_name: ClassVar[dict[str, Caller]] = {}
    _worker_numbers: ClassVar[itertools.count[int]] = itertools.count(1)

    get = _HybridGet()
    """Return a running caller: ``Caller.get(*, name=None, thread=None, backend=None, protected=False)``.

    A classmethod on the class and a method on an instance (the new caller's parent).

    - ``Caller.get()`` inside a running asyncio/trio loop: this thread's caller, created for
      the running loop if needed (named after the thread).
    - ``Caller.get(name=..., backend=...)``: the running caller with that name, else a new
      daemon thread named `name` running a new event loop of `backend` (default: the
      current thread's backend, else asyncio). Blocks until the new caller is running.
    - ``Caller.get(thread=t)``: the caller running in thread `t`.
    - Called on an instance, ``parent.get(name=...)``: a newly created caller becomes a child
      of `parent` (listed in `parent.children`, stopped when `parent` stops).

    Thread-safe.

    Args:
        name (str | None): The caller's name (and its thread's name when a thread is started).
        thread (threading.Thread | None): Look the caller up by thread instead of by name.
        backend (str | None): "asyncio" or "trio", for a new thread.
        protected (bool): A protected caller ignores `stop()` unless forced.

    Raises:
        ValueError: `name` and `thread` together, or an unknown backend.
        RuntimeError: nothing to return (no loop in this thread, no caller in `thread`).
    """

    def __init__(
        self,
        *,
        name: str,
        backend: Backend,
        parent: Caller | None = None,
        protected: bool = False,
        worker: bool = False,
    ) -> None:
        self._name = name
        self._backend: Backend = backend
        self._parent = parent
        self._protected = protected
        self._worker = worker
        self._children: list[Caller] = []
        self._state = _State.STARTING
        self._thread: threading.Thread | None = None
        self._handle: LoopHandle | None = None
        self._waker: Waker | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        # Calls to start (what `scheduled` counts) and call_direct bookkeeping, kept apart.
        self._inbox: deque[Pending[Any]] = deque()
        self._direct: deque[_DirectCall] = deque()
        self._wake_pending = False
        self._ready = threading.Event()
        self._stopped = ThreadsafeEvent()
        self._idle_workers: deque[Caller] = deque()
        self._queues: dict[int, FunctionQueue] = {}
        # Guards `_queues` and the items of every queue (see async_kernel._function_queue).
        self._queue_lock = threading.RLock()
        self._delayed = 0
        self._active = 0
        self._owns_thread = False
        self._asyncio_loop: asyncio.AbstractEventLoop | None = None
        self._native_tasks: set[asyncio.Task[None]] = set()
        self._loop_task: object = None
        self.max_idle_workers = type(self).max_idle_workers

    # --- obtaining callers -------------------------------------------------------------------

    @classmethod
    def _get(
        cls,
        *,
        parent: Caller | None,
        name: str | None,
        thread: threading.Thread | None,
        backend: str | None,
        protected: bool,
    ) -> Caller:
        """What [Caller.get][async_kernel.Caller.get] does (documented there)."""
        if name is not None and thread is not None:
            raise ValueError("Caller.get() takes name= or thread=, not both")
        chosen: Backend | None = validate_backend(backend) if backend is not None else None
        if thread is not None:
            return cls._get_for_thread(thread, protected)
        if name is None:
            return cls._get_for_thread(threading.current_thread(), protected)
        with cls._registry_lock:
            existing = cls._by_name.get(name)
            if existing is not None and existing._state in (_State.STARTING, _State.RUNNING):
                caller = existing
                created = False
            else:
                caller = cls(
                    name=name,
                    backend=chosen or current_backend() or "asyncio",
                    parent=parent,
                    protected=protected,
                )
                cls._by_name[name] = caller
                if parent is not None:
                    parent._adopt_child(caller)
                created = True
        if created:
            caller._start_thread()
        caller._wait_ready()
        return caller

    @classmethod
    def _get_for_thread(cls, thread: threading.Thread, protected: bool) -> Caller:
        caller = cls._by_thread.get(thread.ident or -1)
        if caller is not None and caller._state in (_State.STARTING, _State.RUNNING):
            return caller
        if thread is not threading.current_thread():
            raise RuntimeError(f"No caller is running in thread {thread.name!r}")
        backend = current_backend()
        if backend is None:
            raise RuntimeError(
                "Caller.get() needs a running asyncio or trio event loop in this thread; "
                "pass name= (and backend=) to start a caller in a new thread"
            )
        return cls._adopt_running_loop(backend, protected)

    @classmethod
    def _adopt_running_loop(cls, backend: Backend, protected: bool) -> Caller:
        """Create the caller of this thread's running loop and start its scheduler task."""
        thread = threading.current_thread()
        with cls._registry_lock:
            name = thread.name
            if name in cls._by_name and cls._by_name[name]._state is not _State.STOPPED:
                name = f"{thread.name}-{thread.ident}"
            caller = cls(name=name, backend=backend, protected=protected)
            caller._thread = thread
            caller._handle = loop_handle(backend)
            cls._by_name[name] = caller
            cls._by_thread[threading.get_ident()] = caller
        if backend == "asyncio":
            task = asyncio.get_running_loop().create_task(caller._main())
            caller._loop_task = task  # a strong reference keeps the task alive
        else:
            import trio

            trio.lowlevel.spawn_system_task(caller._main, name=f"Caller {name!r} scheduler")
        caller._state = _State.RUNNING  # accepts work now; the scheduler drains it once it starts
        caller._ready.set()
        return caller

    def _adopt_child(self, child: Caller) -> None:
        with self._registry_lock:
            if self._state in (_State.STOPPING, _State.STOPPED):
                raise CallerStoppedError(
                    f"Caller {self._name!r} is stopped; it can have no new child"
                )
            self._children.append(child)

    def _start_thread(self) -> None:
        self._owns_thread = True
        self._thread = threading.Thread(target=self._thread_main, name=self._name, daemon=True)
        self._thread.start()

    def _wait_ready(self) -> None:
        if not self._ready.is_set() and not self._is_own_thread():
            self._ready.wait()
        if self._state is _State.STOPPED:
            raise CallerStoppedError(f"Caller {self._name!r} stopped before it could run")

    # --- the loop --------------------------------------------------------------------------

    def _thread_main(self) -> None:
        with self._registry_lock:
            self._by_thread[threading.get_ident()] = self
        try:
            anyio.run(self._main, backend=self._backend)
        except BaseException:
            logger.exception("Caller %r ended with an error", self._name)
        finally:
            self._finish()

    async def _main(self) -> None:
        """The caller's home task: holds its task group open until the caller stops.

        Work is started by `_drain`, a plain callback the loop runs when work arrives, not by
        this task: that saves a loop iteration per call over waking a scheduler task.
        """
        try:
            if self._handle is None:
                self._handle = loop_handle(self._backend)
            self._waker = make_waker(self._backend)
            if self._backend == "asyncio":
                self._asyncio_loop = asyncio.get_running_loop()
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                if self._state is _State.STARTING:
                    self._state = _State.RUNNING
                self._ready.set()
                self._drain()  # what arrived before the loop was ready
                while self._state is not _State.STOPPING:
                    await self._waker.wait()
                tg.cancel_scope.cancel()
                await self._cancel_native_tasks()
            # `stopped` means the whole tree has stopped: stop() asked the children already.
            for child in self.children:
                await child.stopped
        finally:
            self._task_group = None
            if not self._owns_thread:  # thread callers finish in _thread_main, after the loop
                self._finish()

    def _drain(self) -> None:
        """Start everything in the inbox. Runs in the loop thread, as a callback or from `_main`."""
        if self._task_group is None:  # `_main` has not started yet: it drains first thing
            return
        self._wake_pending = False
        inbox, direct = self._inbox, self._direct
        # Once stopping, start nothing more: what is left is cancelled by _finish.
        while (inbox or direct) and self._state is not _State.STOPPING:
            while direct:
                func, args, kwargs = direct.popleft()
                try:
                    func(*args, **kwargs)
                except BaseException:  # KeyboardInterrupt too: the loop must go on
                    logger.exception("call_direct of %r raised", func)
            if inbox and self._state is not _State.STOPPING:
                self._start(inbox.popleft())
        if self._state is _State.STOPPING and self._waker is not None:
            self._waker.wake()

    async def _cancel_native_tasks(self) -> None:
        tasks = list(self._native_tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks)

    def _start(self, pending: Pending[Any]) -> None:
        if not pending._claim_start():
            return
        context = self._own_context(pending._context or contextvars.copy_context())
        if pending._delay > 0:
            self._delayed += 1
            assert self._task_group is not None
            context.run(self._task_group.start_soon, self._run_async, pending, None)
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
        elif self._asyncio_loop is not None:
            # A plain asyncio task, cancelled with Task.cancel: far cheaper than an anyio
            # task-group child with its own cancel scope, and cancels the same way.
            task = self._asyncio_loop.create_task(
                self._run_asyncio(pending, result), context=context
            )
            self._native_tasks.add(task)
            task.add_done_callback(self._native_tasks.discard)
        else:
            assert self._task_group is not None
            context.run(self._task_group.start_soon, self._run_async, pending, result)

    async def _run_asyncio(self, pending: Pending[Any], awaitable: Awaitable[Any]) -> None:
        task = asyncio.current_task()
        assert task is not None
        _current_pending.set(pending)
        pending._canceller = lambda: self._call_in_loop(task.cancel)
        if pending._cancel_requested:
            task.cancel()
        self._active += 1
        try:
            result = await awaitable
        except asyncio.CancelledError:
            self._active -= 1
            pending._set_cancelled()  # the task is ours and ends here: nothing to re-raise to
        except BaseException as exc:
            self._active -= 1
            pending._set_exception(exc)
        else:
            self._active -= 1
            pending._set_result(result)

    def _own_context(self, context: contextvars.Context) -> contextvars.Context:
        """Make `context`, copied in the submitting thread, name this caller's backend.

        The copy carries the submitter's sniffio library name (`anyio.run` sets it), which would
        make sniffio and anyio see the wrong backend here (trio inside an asyncio caller).
        """
        context.run(sniffio.current_async_library_cvar.set, self._backend)
        return context

    def _call_sync(self, pending: Pending[Any], func: Callable[..., Any]) -> Any:
        _current_pending.set(pending)
        self._active += 1
        try:
            return func(*pending._args, **pending._kwargs)
        finally:
            self._active -= 1

    async def _run_async(self, pending: Pending[Any], awaitable: Awaitable[Any] | None) -> None:
        _current_pending.set(pending)
        counted = awaitable is not None  # a call_later counts as active once its delay is over
        if counted:
            self._active += 1
        cancelled_exc = anyio.get_cancelled_exc_class()

        def uncount() -> None:
            # Called before the Pending completes: whoever sees it done sees it no longer active.
            nonlocal counted
            if counted:
                self._active -= 1
                counted = False

        try:
            with anyio.CancelScope() as scope:
                pending._canceller = lambda: self._call_in_loop(scope.cancel)
                if pending._cancel_requested:
                    scope.cancel()
                if awaitable is None:  # a call_later: wait, then call
                    try:
                        await anyio.sleep(pending._delay)
                    finally:
                        self._delayed -= 1
                    self._active += 1
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
            cancellation, error = split_cancellation(exc, self._backend)
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

    def _finish(self) -> None:
        """Mark stopped, cancel what never started, and unregister. Runs once, in any thread."""
        with self._registry_lock:
            if self._state is _State.STOPPED:
                return
            self._state = _State.STOPPED
            if self._by_name.get(self._name) is self:
                del self._by_name[self._name]
            thread_id = self._thread.ident if self._thread is not None else None
            if thread_id is not None and self._by_thread.get(thread_id) is self:
                del self._by_thread[thread_id]
            parent = self._parent
        self._cancel_inbox()
        with self._queue_lock:
            queues = list(self._queues.values())
            self._queues.clear()
            for queue in queues:  # those whose runner never started
                queue.closed = True
        del queues  # freed outside the lock, like every dropped call
        for child in list(self._children):
            child.stop(force=True)
        if parent is not None:
            parent._forget_child(self)
        self._ready.set()
        self._stopped.set()

    def _cancel_inbox(self) -> None:
        self._direct.clear()
        while True:
            try:
                item = self._inbox.popleft()
            except IndexError:
                return
            item.cancel(f"Caller {self._name!r} stopped")

    def _forget_child(self, child: Caller) -> None:
        with self._registry_lock, contextlib.suppress(ValueError):
            self._children.remove(child)
        with contextlib.suppress(ValueError):
            self._idle_workers.remove(child)

    # --- delivering work -------------------------------------------------------------------

    def _is_own_thread(self) -> bool:
        handle = self._handle
        return handle is not None and handle.thread_id == threading.get_ident()

    def _submit(self, item: Any, queue: deque[Any]) -> None:
        """Put `item` on `queue` (the inbox or the direct deque) and make sure a drain follows."""
        if self._state is _State.STOPPING or self._state is _State.STOPPED:
            raise CallerStoppedError(f"Caller {self._name!r} is stopped; it accepts no new calls")
        queue.append(item)
        if not self._wake_pending:
            self._wake_pending = True
            handle = self._handle
            if handle is not None:  # None while starting: the first drain will see the item
                try:
                    if handle.thread_id == threading.get_ident():
                        handle.call_soon(self._wake)
                    else:
                        handle.call_soon_threadsafe(self._wake)
                except RuntimeError:  # the loop has closed under us
                    pass
        if self._state is _State.STOPPED:  # lost a race with _finish: cancel, never strand
            self._cancel_inbox()

    def _wake(self) -> None:
        self._drain()

    def _call_in_loop(self, func: Callable[[], Any]) -> None:
        """Run `func()` in the loop thread: now if this is it, else soon. Never raises."""
        if self._is_own_thread():
            func()
        else:
            with contextlib.suppress(RuntimeError):
                self.call_direct(func)

    # --- public API: scheduling ------------------------------------------------------------

    @overload
    def call_soon(
        self, func: Callable[P, Coroutine[Any, Any, T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Pending[T]: ...
    @overload
    def call_soon(
        self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Pending[T]: ...
    def call_soon(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Pending[Any]:
        """Schedule `func(*args, **kwargs)` in this caller's loop; return its Pending.

        `func` may be sync (it runs in the scheduler, so it should not block) or async (it runs
        in its own task). The call runs in a copy of the calling thread's contextvars context.
        Whatever it raises, any BaseException (KeyboardInterrupt, SystemExit, ...) included,
        completes the Pending with that exception; the caller goes on serving.

        Thread-safe: callable from any thread; calls from one thread start in order.
        Cancellation: `pending.cancel()` stops the call (not started: it never starts; running
        and async: its task is cancelled); cancelling a task that awaits the Pending only stops
        that wait. Stopping the caller cancels the call.

        Raises:
            CallerStoppedError: the caller is stopping or stopped.
        """
        pending: Pending[Any] = Pending(
            func, args, kwargs, caller=self, context=contextvars.copy_context()
        )
        self._submit(pending, self._inbox)
        return pending

    @overload
    def call_later(
        self,
        delay: float,
        func: Callable[P, Coroutine[Any, Any, T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Pending[T]: ...
    @overload
    def call_later(
        self, delay: float, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Pending[T]: ...
    def call_later(
        self, delay: float, func: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Pending[Any]:
        """Like [call_soon][async_kernel.Caller.call_soon], after `delay` seconds.

        Until the delay ends the call counts as scheduled; cancelling it then means it never
        runs. Thread-safe, and cancelled (or completed with what it raises) like `call_soon`.
        """
        pending: Pending[Any] = Pending(
            func,
            args,
            kwargs,
            caller=self,
            context=contextvars.copy_context(),
            delay=max(delay, 1e-9),
        )
        self._submit(pending, self._inbox)
        return pending

    def call_direct(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Call `func(*args, **kwargs)` inside the scheduler itself: no Pending, no new task.

        For short, non-blocking bookkeeping. Whatever `func` raises (any BaseException,
        KeyboardInterrupt included) is logged with its traceback; the caller goes on.
        Thread-safe. There is nothing to cancel: once submitted the call runs, unless the
        caller stops first.

        Raises:
            CallerStoppedError: the caller is stopping or stopped.
        """
        self._submit((func, args, kwargs), self._direct)

    @overload
    def to_thread(
        self, func: Callable[P, Coroutine[Any, Any, T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Pending[T]: ...
    @overload
    def to_thread(
        self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Pending[T]: ...
    def to_thread(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Pending[Any]:
        """Run `func` in a worker thread that runs an event loop of this caller's backend.

        Sync functions may block there; async functions run in the worker's loop. Workers are
        children of this caller, are reused from a pool of at most `max_idle_workers` idle ones,
        and have pools of their own. What the function raises (any BaseException) completes
        the Pending; the worker and this caller go on.

        Thread-safe. Cancellation as for `call_soon` (a running sync function cannot be
        interrupted); stopping this caller stops its workers and cancels what runs there.
        """
        worker = self._take_worker()
        pending = worker.call_soon(func, *args, **kwargs)
        pending.add_done_callback(lambda _: self._return_worker(worker))
        return pending

    def _take_worker(self) -> Caller:
        while True:
            try:
                worker = self._idle_workers.pop()
            except IndexError:
                break
            if worker._state is _State.RUNNING:
                return worker
        if self._state is not _State.RUNNING:
            raise CallerStoppedError(f"Caller {self._name!r} is stopped; it accepts no new calls")
        name = f"{self._name}/worker-{next(self._worker_numbers)}"
        worker = type(self)(name=name, backend=self._backend, parent=self, worker=True)
        self._adopt_child(worker)
        worker._start_thread()
        worker._wait_ready()
        return worker

    def _return_worker(self, worker: Caller) -> None:
        if (
            worker._state is _State.RUNNING
            and self._state is _State.RUNNING
            and len(self._idle_workers) < self.max_idle_workers
        ):
            self._idle_workers.append(worker)
        else:
            worker.stop(force=True)

    def queue_call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Append `func(*args, **kwargs)` to the queue dedicated to `hash(func)`; return None.

        Calls in one queue run one at a time in this caller's loop, in the order they were
        queued (an async call is awaited to its end before the next starts), in the contextvars
        context of the queue's first call. Every call queued runs exactly once, unless its
        queue is closed or the caller stops first.

        Which calls share a queue: those whose functions hash equal, that is the same function
        object, bound methods of the same method of the same object (each attribute access
        makes a new bound method, all of them hash alike), or callables equal by value (a class
        with `__eq__` and `__hash__`).

        When a queue ends: it retires once idle (nothing waits or runs) and the function of the
        call queued last (for a bound method, its object) has been garbage-collected; waiting
        calls hold their functions, so a queue never retires with work in it. A function that
        cannot be weakly referenced keeps its queue until it is closed.
        [queue_close][async_kernel.Caller.queue_close] ends it at once, and so does stopping the
        caller. A later call starts a new queue, with its own context.

        A call that raises, whatever it raises (KeyboardInterrupt, SystemExit and other
        BaseExceptions included), is logged with its traceback and the queue goes on.

        Thread-safe: callable from any thread, calls from one thread keep their order.
        Cancellation: there is no Pending; `queue_close(func)` cancels the running call and
        drops the waiting ones, stopping the caller cancels them too.

        Raises:
            CallerStoppedError: the caller is stopping or stopped.
        """
        key = hash(func)  # user code (a __hash__): before taking the lock
        item: QueueItem = (func, args, kwargs)
        with self._queue_lock:
            queue = self._queues.get(key)
            if queue is None or queue.closed:
                queue = None
            else:
                queue.items.append(item)
                if queue._held() is not func:  # cheap test first: the same function again
                    queue.track(func)
        if queue is None:
            self._new_queue(key, item)
        else:
            self.call_direct(queue.wake)

    def _new_queue(self, key: int, item: QueueItem) -> None:
        """queue_call's slow path: start a queue for `key` with `item` (unless one appeared)."""
        if self._state is _State.STOPPING or self._state is _State.STOPPED:
            raise CallerStoppedError(f"Caller {self._name!r} is stopped; it accepts no new calls")
        func = item[0]
        fresh = FunctionQueue(self, key, func)  # reads the function's name: outside the lock
        with self._queue_lock:
            queue = self._queues.get(key)
            if queue is not None and not queue.closed:  # another thread made it meanwhile
                queue.items.append(item)
                queue.track(func)
            else:
                if queue is not None:  # closed by queue_close; its call is still unwinding
                    fresh.follow(queue)
                fresh.items.append(item)
                self._queues[key] = queue = fresh
        if queue is not fresh:
            self.call_direct(queue.wake)
            return
        try:
            self.call_direct(self._start_queue, fresh, contextvars.copy_context())
        except CallerStoppedError:
            with self._queue_lock:
                fresh.closed = True
                if self._queues.get(key) is fresh:
                    del self._queues[key]
            raise

    def _start_queue(self, queue: FunctionQueue, context: contextvars.Context) -> None:
        assert self._task_group is not None
        self._own_context(context).run(self._task_group.start_soon, queue.run)

    def queue_close(self, func: Callable[..., Any]) -> None:
        """End the queue of `hash(func)`: drop the calls that wait and cancel the running one.

        The waiting calls are dropped at once; the running call is cancelled from the caller's
        loop (a running sync call cannot be interrupted and finishes). A call queued after
        `queue_close` starts a new queue, which waits until the cancelled call has unwound, so
        calls to one function never overlap. A no-op if there is no such queue.
        Thread-safe.
        """
        key = hash(func)
        with self._queue_lock:
            queue = self._queues.get(key)
            if queue is None or queue.closed:
                return
            queue.closed = True
            dropped = queue.take_items()
        del dropped  # freed outside the lock: finalizers may queue calls
        self._call_in_loop(queue.cancel)

    # --- public API: stopping --------------------------------------------------------------

    def stop(self, *, force: bool = False) -> bool:
        """Stop the caller: running calls are cancelled, unstarted ones complete as cancelled,
        and children stop too. Returns at once; await [stopped][async_kernel.Caller.stopped] to
        wait for the end (set once the children have stopped as well). A protected caller
        ignores this, returning False, unless `force` is True. Thread-safe and idempotent.
        """
        with self._registry_lock:
            if self._protected and not force:
                return False
            if self._state is _State.STOPPING or self._state is _State.STOPPED:
                return True
            self._state = _State.STOPPING
            children = list(self._children)
        for child in children:
            child.stop(force=True)
        handle = self._handle
        if handle is None:
            if self._thread is None:  # never started
                self._finish()
            return True
        self._wake_pending = True
        try:
            if handle.thread_id == threading.get_ident():
                handle.call_soon(self._wake)
            else:
                handle.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is gone already
            self._finish()
        return True

    @property
    def stopped(self) -> ThreadsafeEvent:
        """Set once the caller has stopped: ``await caller.stopped`` (asyncio or trio, any
        thread), ``caller.stopped.wait_sync(timeout)`` in plain threads, truthy once stopped."""
        return self._stopped

    # --- public API: waiting ---------------------------------------------------------------

    async def as_completed(
        self, pendings: Iterable[Pending[Any]], *, timeout: float | None = None
    ) -> AsyncGenerator[Pending[Any], None]:
        """Yield each Pending as it completes (any backend, any thread).

        Raises TimeoutError if they are not all done within `timeout` seconds of the iteration's
        start. No cancel scope stays open across a `yield`, so breaking out of the loop early
        is safe on trio and asyncio.
        """
        remaining = set(pendings)
        finished: deque[Pending[Any]] = deque()
        current: list[ThreadsafeEvent] = [ThreadsafeEvent()]
        deadline = None if timeout is None else anyio.current_time() + timeout

        def on_done(p: Pending[Any]) -> None:
            finished.append(p)
            current[0].set()

        for p in remaining:
            p.add_done_callback(on_done)
        try:
            while remaining:
                if not finished:
                    event = current[0] = ThreadsafeEvent()
                    if not finished:
                        left = None if deadline is None else deadline - anyio.current_time()
                        with anyio.fail_after(left):
                            await event
                p = finished.popleft()
                if p in remaining:
                    remaining.discard(p)
                    yield p
        finally:
            for p in remaining:
                p.remove_done_callback(on_done)

    async def wait(
        self,
        pendings: Iterable[Pending[Any]],
        *,
        timeout: float | None = None,
        return_when: ReturnWhen = "ALL_COMPLETED",
    ) -> tuple[set[Pending[Any]], set[Pending[Any]]]:
        """Wait for `pendings`, like `asyncio.wait`; return `(done, not_done)`.

        `return_when` is "FIRST_COMPLETED", "FIRST_EXCEPTION" or "ALL_COMPLETED". On timeout the
        sets are returned as they stand (no exception). Nothing is cancelled.
        """
        if return_when not in ("FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED"):
            raise ValueError(f"Invalid return_when: {return_when!r}")
        todo = set(pendings)
        done: set[Pending[Any]] = {p for p in todo if p.done()}

        def enough(finished: Iterable[Pending[Any]]) -> bool:
            if return_when == "FIRST_COMPLETED":
                return any(True for _ in finished)
            if return_when == "FIRST_EXCEPTION":
                return any(p.cancelled() or p.exception() is not None for p in finished)
            return False

        if not todo - done or enough(done):  # like asyncio.wait: already enough, return now
            return done, todo - done
        with anyio.move_on_after(timeout):
            # aclosing: leaving early closes the generator here, in this task.
            async with contextlib.aclosing(self.as_completed(todo - done)) as completed:
                async for p in completed:
                    done.add(p)
                    if enough((p,)):
                        break
        return done, todo - done

    # --- public API: introspection ---------------------------------------------------------

    @staticmethod
    def current_pending() -> Pending[Any] | None:
        """The Pending of the call running in the current context, or None."""
        return _current_pending.get()

    @classmethod
    def all_callers(cls, running_only: bool = True) -> list[Caller]:
        """Every caller in this process: the running ones, or also those starting/stopping."""
        with cls._registry_lock:
            callers = list(cls._by_name.values())
        if running_only:
            return [c for c in callers if c._state is _State.RUNNING]
        return callers

    @property
    def name(self) -> str:
        """The caller's name (unique among live callers)."""
        return self._name

    @property
    def thread(self) -> threading.Thread | None:
        """The thread whose event loop the caller runs in."""
        return self._thread

    @property
    def backend(self) -> Backend:
        """ "asyncio" or "trio"."""
        return self._backend

    @property
    def running(self) -> bool:
        """True while the caller accepts and runs work."""
        return self._state is _State.RUNNING

    @property
    def protected(self) -> bool:
        """A protected caller (the kernel's own) ignores `stop()` unless forced."""
        return self._protected

    @property
    def parent(self) -> Caller | None:
        """The caller this one was created from with ``parent.get(...)``/`to_thread`, if any."""
        return self._parent

    @property
    def children(self) -> list[Caller]:
        """Callers created from this one (including `to_thread` workers); a copy."""
        with self._registry_lock:
            return list(self._children)

    @property
    def worker(self) -> bool:
        """True for a `to_thread` worker."""
        return self._worker

    def snapshot(self) -> CallerRow:
        """This caller's row of the `caller_state_reply` wire contract.

        Cheap and thread-safe: reads counters without waiting for the caller's loop, so it
        answers even while that loop is blocked.
        """
        thread = self._thread
        return {
            "name": self._name,
            "thread_id": thread.ident if thread is not None else None,
            "thread_name": thread.name if thread is not None else None,
            "backend": self._backend,
            "running": self._state is _State.RUNNING,
            "state": self._state.lifecycle,
            "protected": self._protected,
            "parent": self._parent._name if self._parent is not None else None,
            "children": [c._name for c in self.children],
            "worker": self._worker,
            "idle_workers": len(self._idle_workers),
            "scheduled": len(self._inbox) + self._delayed,
            "active": self._active,
            "queues": [q.snapshot() for q in list(self._queues.values())],
        }

    def __repr__(self) -> str:
        return f"<Caller {self._name!r} {self._backend} {self._state.value}>"
