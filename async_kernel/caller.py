"""[Caller][async_kernel.Caller]: one event loop per thread, with scheduling, worker pools and queues.

A Caller owns a scheduler task in one thread's event loop (asyncio or trio). Any thread can hand
it work; the work runs in that loop and its outcome comes back as a [Pending][async_kernel.Pending].

This module is the public façade: `Caller` holds direct references to its parts, private
modules of `async_kernel._caller` with one job each (the registry, the scheduler, the engine of
its backend, the worker pool, the queue table; see that package's docstring), and drives its
own lifecycle (start, stop, end) across them.

Thread model: the public methods of Caller may be called from any thread unless a docstring says
otherwise. State that only the loop thread mutates (counters, queue rows) is read by
`snapshot()` without locks, so a snapshot is cheap and never waits for a busy loop. The queue
table and the queues' items are shared with submitting threads under the table's lock
(see `async_kernel._caller.function_queue`).

User code never ends a caller's loop: whatever a scheduled function raises, any BaseException
(KeyboardInterrupt, SystemExit, GeneratorExit, ...) included, goes into its Pending, or is
logged where there is none (queued calls, `call_direct`, done callbacks). Only the backend's
genuine cancellation of a task propagates, to the cancel scope that asked for it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable
from typing import Any, ParamSpec, Self, TypeVar, overload

import anyio

from async_kernel._caller import waiting
from async_kernel._caller.engine import engine_for
from async_kernel._caller.function_queue import QueueTable
from async_kernel._caller.lifecycle import CallerStoppedError, State
from async_kernel._caller.registry import HybridGet, registry
from async_kernel._caller.scheduler import Scheduler
from async_kernel._caller.scheduler import current_pending as _current_pending
from async_kernel._caller.waiting import ReturnWhen
from async_kernel._caller.workers import WorkerPool
from async_kernel.pending import Pending, ThreadsafeEvent
from async_kernel.wire import Backend, CallerRow

__all__ = ["Caller", "CallerStoppedError"]

CallerStoppedError.__module__ = __name__  # its public home, as in tracebacks and reprs

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("async_kernel.caller")


_DEBUGGER_MARKS = ("pydev_do_not_trace", "is_pydev_daemon_thread")
"""Attributes of a Thread by which debugpy (pydevd) leaves it untraced and unlisted. A child
caller's thread (a `to_thread` worker's too) gets those its parent's thread has, before it
starts: pydevd looks once, at the thread's first traced call."""


class Caller:
    """A thread's event loop, reachable from every thread.

    Obtain callers with [Caller.get][async_kernel.Caller.get], never by constructing one
    (``Caller(...)`` raises TypeError). There is at most one caller per thread. Callers created
    in new threads are daemon threads that run until [stop][async_kernel.Caller.stop]ped; a
    caller created for an existing loop (``Caller.get()`` inside it) stops when that loop ends.
    """

    max_idle_workers: int = 4
    """How many idle `to_thread` workers a caller keeps for reuse (class default; settable per caller)."""

    get = HybridGet()
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

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(
            "Caller objects are made by Caller.get(); use Caller.get(name=...) for a caller "
            "in a new thread, or Caller.get() inside a running event loop"
        )

    @classmethod
    def _create(
        cls,
        *,
        name: str,
        backend: Backend,
        parent: Caller | None = None,
        protected: bool = False,
        worker: bool = False,
    ) -> Self:
        """Make a caller, not started yet. Only the registry calls this."""
        caller = object.__new__(cls)
        caller._init(name=name, backend=backend, parent=parent, protected=protected, worker=worker)
        return caller

    def _init(
        self, *, name: str, backend: Backend, parent: Caller | None, protected: bool, worker: bool
    ) -> None:
        self._name = name
        self._backend: Backend = backend
        self._parent = parent
        self._protected = protected
        self._worker = worker
        self._children: list[Caller] = []
        """Under the registry lock."""
        self._thread: threading.Thread | None = None
        self._owns_thread = False
        self._home_task: object = None
        """Keeps the home task of an adopted loop alive (asyncio holds tasks weakly)."""
        self._stopped = ThreadsafeEvent()
        self._scheduler = Scheduler(name, engine_for(backend))
        self._workers = WorkerPool(self)
        self._queues = QueueTable(self._scheduler)
        self.max_idle_workers = type(self).max_idle_workers

    # --- starting (called by the registry) --------------------------------------------------

    def _bind_to_running_loop(self) -> None:
        """Make this thread, and the loop running in it, the caller's."""
        self._thread = threading.current_thread()
        self._scheduler.handle = self._scheduler.engine.loop_handle()

    def _start_home_task(self) -> None:
        """Start `_main` in this thread's running loop; accept work at once."""
        self._home_task = self._scheduler.engine.spawn_home_task(
            self._main, f"Caller {self._name!r} scheduler"
        )
        self._scheduler.mark_running()  # the scheduler drains what came first once it starts

    def _start_thread(self) -> None:
        self._owns_thread = True
        self._thread = threading.Thread(target=self._thread_main, name=self._name, daemon=True)
        parent_thread = self._parent._thread if self._parent else None
        for mark in _DEBUGGER_MARKS:  # a child works on behalf of its parent: kept out alike
            if getattr(parent_thread, mark, False):
                setattr(self._thread, mark, True)
        self._thread.start()

    def _wait_ready(self) -> None:
        scheduler = self._scheduler
        if not scheduler.ready.is_set() and not scheduler.is_own_thread():
            scheduler.ready.wait()
        if scheduler.state is State.STOPPED:
            raise CallerStoppedError(f"Caller {self._name!r} stopped before it could run")

    def _adopt_child(self, child: Caller) -> None:
        with registry.lock:
            state = self._scheduler.state
            if state is State.STOPPING or state is State.STOPPED:
                raise CallerStoppedError(
                    f"Caller {self._name!r} is stopped; it can have no new child"
                )
            self._children.append(child)

    # --- the loop ---------------------------------------------------------------------------

    def _thread_main(self) -> None:
        registry.register_thread(self)
        try:
            anyio.run(self._main, backend=self._backend)
        except BaseException:
            logger.exception("Caller %r ended with an error", self._name)
        finally:
            self._finish()

    async def _main(self) -> None:
        """The caller's home task: the scheduler runs until the caller stops, then the children
        end. Work is started by the scheduler's drain, a loop callback, not by this task."""
        try:
            await self._scheduler.run()
            # `stopped` means the whole tree has stopped: stop() asked the children already.
            for child in self.children:
                await child.stopped
        finally:
            if not self._owns_thread:  # thread callers finish in _thread_main, after the loop
                self._finish()

    def _finish(self) -> None:
        """Mark stopped, cancel what never started, and unregister. Runs once, in any thread."""
        scheduler = self._scheduler
        with registry.lock:
            if scheduler.state is State.STOPPED:
                return
            scheduler.state = State.STOPPED
            registry.unregister(self)
            parent = self._parent
        scheduler.cancel_inbox()
        self._queues.close_all()
        for child in list(self._children):
            child.stop(force=True)
        if parent is not None:
            parent._forget_child(self)
        scheduler.ready.set()
        self._stopped.set()

    def _forget_child(self, child: Caller) -> None:
        with registry.lock, contextlib.suppress(ValueError):
            self._children.remove(child)
        self._workers.forget(child)

    def _is_own_thread(self) -> bool:
        """True in the caller's loop thread (where waiting synchronously would deadlock)."""
        return self._scheduler.is_own_thread()

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
        scheduler = self._scheduler
        scheduler.submit(pending, scheduler.inbox)
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
        scheduler = self._scheduler
        scheduler.submit(pending, scheduler.inbox)
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
        scheduler = self._scheduler
        scheduler.submit((func, args, kwargs), scheduler.direct)

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
        and have pools of their own. Each is a caller with a unique name
        (``<caller>/worker-<n>``), listed by `all_callers` while it lives. What the function
        raises (any BaseException) completes the Pending; the worker and this caller go on.

        Thread-safe. Cancellation as for `call_soon` (a running sync function cannot be
        interrupted); stopping this caller stops its workers and cancels what runs there.
        """
        workers = self._workers
        worker = workers.take()
        pending = worker.call_soon(func, *args, **kwargs)
        pending.add_done_callback(lambda _: workers.give_back(worker))
        return pending

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
        self._queues.call(func, args, kwargs)

    def _queue_bookkeeping(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """[queue_call][async_kernel.Caller.queue_call] for a host's own queues (the kernel's
        execute and comm queues): the same queue, run the same way, but not user work.

        Its running call is counted apart (in the snapshot's `active` all the same) and its
        waiting calls are not, so that `_has_user_work` sees only the user's calls; the host
        accounts for these requests itself. Thread-safe. A call joining an open queue of the
        same function leaves that queue as it was made.

        Raises:
            CallerStoppedError: the caller is stopping or stopped.
        """
        self._queues.call(func, args, kwargs, True)

    def queue_close(self, func: Callable[..., Any]) -> None:
        """End the queue of `hash(func)`: drop the calls that wait and cancel the running one.

        The waiting calls are dropped at once; the running call is cancelled from the caller's
        loop (a running sync call cannot be interrupted and finishes). A call queued after
        `queue_close` starts a new queue, which waits until the cancelled call has unwound, so
        calls to one function never overlap. A no-op if there is no such queue.
        Thread-safe.
        """
        self._queues.close(func)

    # --- public API: stopping --------------------------------------------------------------

    def stop(self, *, force: bool = False) -> bool:
        """Stop the caller: running calls are cancelled, unstarted ones complete as cancelled,
        and children stop too. Returns at once; await [stopped][async_kernel.Caller.stopped] to
        wait for the end (set once the children have stopped as well). A protected caller
        ignores this, returning False, unless `force` is True. Thread-safe and idempotent.
        """
        scheduler = self._scheduler
        with registry.lock:
            if self._protected and not force:
                return False
            state = scheduler.state
            if state is State.STOPPING or state is State.STOPPED:
                return True
            scheduler.state = State.STOPPING
            children = list(self._children)
        for child in children:
            child.stop(force=True)
        handle = scheduler.handle
        if handle is None:
            if self._thread is None:  # never started
                self._finish()
            return True
        if not scheduler.schedule_drain(handle):  # the loop is gone already
            self._finish()
        return True

    @property
    def stopped(self) -> ThreadsafeEvent:
        """Set once the caller has stopped: ``await caller.stopped`` (asyncio or trio, any
        thread), ``caller.stopped.wait_sync(timeout)`` in plain threads, truthy once stopped."""
        return self._stopped

    # --- public API: waiting ---------------------------------------------------------------

    def as_completed(
        self, pendings: Iterable[Pending[Any]], *, timeout: float | None = None
    ) -> AsyncGenerator[Pending[Any], None]:
        """Yield each Pending as it completes (any backend, any thread).

        Raises TimeoutError if they are not all done within `timeout` seconds of the iteration's
        start. No cancel scope stays open across a `yield`, so breaking out of the loop early
        is safe on trio and asyncio.
        """
        return waiting.as_completed(pendings, timeout=timeout)

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
        return await waiting.wait(pendings, timeout=timeout, return_when=return_when)

    # --- public API: introspection ---------------------------------------------------------

    @staticmethod
    def current_pending() -> Pending[Any] | None:
        """The Pending of the call running in the current context, or None."""
        return _current_pending.get()

    @classmethod
    def all_callers(cls, running_only: bool = True) -> list[Caller]:
        """Every caller in this process: the running ones, or also those starting/stopping.

        `to_thread` workers are listed too (their `worker` flag is set), idle or busy: with
        `running_only=False`, a caller named in another's `children` is listed, except for an
        instant once it has stopped (it leaves this list just before its parent's children).
        Thread-safe.
        """
        return registry.all_callers(running_only)

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
        return self._scheduler.state is State.RUNNING

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
        with registry.lock:
            return list(self._children)

    @property
    def worker(self) -> bool:
        """True for a `to_thread` worker."""
        return self._worker

    def _has_user_work(self) -> bool:
        """Whether user work is in flight here: calls scheduled (waiting in the inbox or in a
        `call_later` delay) or active, or calls waiting in a queue, except the calls of
        bookkeeping queues (`_queue_bookkeeping`).

        For the kernel's `working` rule. Cheap, lock-free and thread-safe like `snapshot`: it
        reads the counters without waiting for the loop. User calls are counted in `active`
        alone, so a running bookkeeping call is never mistaken for user work. A call moving
        from a queue or the inbox to running is briefly in neither count: an under-count for
        an instant, never an over-count. The reads follow the calls' way (waiting first,
        running last) to keep that window small.
        """
        scheduler = self._scheduler
        return bool(
            self._queues.has_user_items()
            or scheduler.inbox
            or scheduler.delayed
            or scheduler.active
        )

    def snapshot(self) -> CallerRow:
        """This caller's row of the `caller_state_reply` wire contract.

        Cheap and thread-safe: reads counters without waiting for the caller's loop, so it
        answers even while that loop is blocked.
        """
        thread = self._thread
        scheduler = self._scheduler
        state = scheduler.state
        return {
            "name": self._name,
            "thread_id": thread.ident if thread is not None else None,
            "thread_name": thread.name if thread is not None else None,
            "backend": self._backend,
            "running": state is State.RUNNING,
            "state": state.lifecycle,
            "protected": self._protected,
            "parent": self._parent._name if self._parent is not None else None,
            "children": [c._name for c in self.children],
            "worker": self._worker,
            "idle_workers": len(self._workers.idle),
            "scheduled": len(scheduler.inbox) + scheduler.delayed,
            "active": scheduler.active + scheduler.bookkeeping,
            "queues": self._queues.snapshot(),
        }

    def __repr__(self) -> str:
        return f"<Caller {self._name!r} {self._backend} {self._scheduler.state.value}>"
