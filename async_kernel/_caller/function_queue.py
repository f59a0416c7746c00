"""The per-function queues behind [Caller.queue_call][async_kernel.Caller.queue_call].

A caller's `QueueTable` keys its queues by `hash(func)`; one task in the caller's loop per
`FunctionQueue` runs the queued calls one at a time, in submission order, inside the
contextvars context of the queue's first call.

Which calls share a queue: those whose functions hash equal: the same function object; bound
methods of the same method of the same object (a bound method is made afresh on every attribute
access, but hashes like its object and function); callables equal by value (a class with
`__eq__`/`__hash__`).

When a queue ends:

- it *retires* once it is idle (no call waits, none runs) and the object that keeps it alive
  has been collected: the function of the call queued last, or for a bound method the object
  it is bound to. Each waiting call holds its function strongly, so a function with work in
  its queue cannot be collected and a queue never retires with work in it. Functions that
  cannot be referenced weakly (builtin methods of objects without weak-reference support, say)
  keep their queue until it is closed;
- `queue_close(func)` closes it: the waiting calls are dropped and the running one is
  cancelled; a queue of the same key made after that waits until the cancelled call has
  unwound, so calls to one function never overlap;
- the caller stops.

A call queued after its queue has retired or been closed starts a new queue (with the context
of that call).

A *bookkeeping* queue (made by `Caller._queue_bookkeeping`: the kernel's execute and comm
queues) behaves the same, but its running call counts in the scheduler's `bookkeeping` counter
rather than in `active`, and its waiting calls are not user work (`QueueTable.has_user_items`):
the kernel accounts for those requests itself.

Thread model and locking: `QueueTable.call`, `close` and `snapshot` may be called from any
thread; `FunctionQueue.run`, `wake` and `cancel` run in the caller's loop thread. The table's
`lock` guards the table and, in every queue, `items`, `closed`, the tracked reference and the
successor link. It is held for a few operations at a time and never while user code runs:
`hash(func)` is computed before it is taken, and dropped calls are freed after it is released. A
weak-reference callback can run in any thread at any allocation, even one made while the lock
is held, so it never takes the lock: it only wakes the runner, which decides under the lock.
(The lock is reentrant all the same, so that a finalizer run by a garbage collection under it
may queue a call without deadlocking.)
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from types import BuiltinMethodType, MethodType, ModuleType
from typing import TYPE_CHECKING, Any

import anyio

from async_kernel._caller.lifecycle import CallerStoppedError, State, stopped_error
from async_kernel.wire import CallerQueueRow

if TYPE_CHECKING:
    from async_kernel._caller.engine import Waker
    from async_kernel._caller.scheduler import Scheduler

__all__ = ["FunctionQueue", "QueueItem", "QueueTable", "function_label"]

logger = logging.getLogger("async_kernel.caller")

QueueItem = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def function_label(func: Callable[..., Any]) -> str:
    """`module.qualname` of a callable, for snapshots and logs."""
    target = getattr(func, "__func__", func)
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}.{name}" if module else name


def _lifetime_of(func: Callable[..., Any]) -> object:
    """The object whose collection lets `func`'s queue retire.

    A bound method (Python or builtin) is made afresh on every attribute access and dies at
    once, so its queue lives as long as the object it is bound to; anything else is itself.
    """
    kind = type(func)
    if kind is MethodType:
        return func.__self__  # type: ignore[attr-defined]
    if kind is BuiltinMethodType:
        owner = func.__self__  # type: ignore[attr-defined]
        if owner is not None and not isinstance(owner, ModuleType):
            return owner
    return func


def _nothing() -> None:
    return None


_NO_ITEM: QueueItem = (_nothing, (), {})
"""Stands for "no call" where the runner lets go of the one it ran."""


class QueueTable:
    """The open queues of one caller, by key; what `queue_call`/`queue_close` do."""

    __slots__ = ("lock", "queues", "scheduler")

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.queues: dict[int, FunctionQueue] = {}
        """Open queues by `hash(func)`. Under `lock`."""
        self.lock = threading.RLock()
        """Guards `queues` and the items of every queue (see the module doc)."""

    def call(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        bookkeeping: bool = False,
    ) -> None:
        """Queue `func(*args, **kwargs)` (see `Caller.queue_call`). Any thread.

        `bookkeeping` makes a new queue a bookkeeping one (see the module doc); a call joining
        an open queue leaves that queue as it was made.
        """
        key = hash(func)  # user code (a __hash__): before taking the lock
        item: QueueItem = (func, args, kwargs)
        with self.lock:
            queue = self.queues.get(key)
            if queue is None or queue.closed:
                queue = None
            else:
                queue.items.append(item)
                if queue._held() is not func:  # cheap test first: the same function again
                    queue.track(func)
        if queue is None:
            self._new_queue(key, item, bookkeeping)
        else:
            self.scheduler.call_direct(queue.wake)

    def _new_queue(self, key: int, item: QueueItem, bookkeeping: bool) -> None:
        """`call`'s slow path: start a queue for `key` with `item` (unless one appeared)."""
        scheduler = self.scheduler
        state = scheduler.state
        if state is State.STOPPING or state is State.STOPPED:
            raise stopped_error(scheduler.name)
        func = item[0]
        fresh = FunctionQueue(self, key, func, bookkeeping)  # reads its name: outside the lock
        with self.lock:
            queue = self.queues.get(key)
            if queue is not None and not queue.closed:  # another thread made it meanwhile
                queue.items.append(item)
                queue.track(func)
            else:
                if queue is not None:  # closed by queue_close; its call is still unwinding
                    fresh.follow(queue)
                fresh.items.append(item)
                self.queues[key] = queue = fresh
        if queue is not fresh:
            scheduler.call_direct(queue.wake)
            return
        try:
            scheduler.call_direct(self._start, fresh, contextvars.copy_context())
        except CallerStoppedError:
            with self.lock:
                fresh.closed = True
                if self.queues.get(key) is fresh:
                    del self.queues[key]
            raise

    def _start(self, queue: FunctionQueue, context: contextvars.Context) -> None:
        """Start the runner of `queue` in `context`. Loop thread (a direct call)."""
        scheduler = self.scheduler
        assert scheduler.task_group is not None
        scheduler.own_context(context).run(scheduler.task_group.start_soon, queue.run)

    def close(self, func: Callable[..., Any]) -> None:
        """End the queue of `hash(func)` (see `Caller.queue_close`). Any thread."""
        key = hash(func)
        with self.lock:
            queue = self.queues.get(key)
            if queue is None or queue.closed:
                return
            queue.closed = True
            dropped = queue.take_items()
        del dropped  # freed outside the lock: finalizers may queue calls
        self.scheduler.call_in_loop(queue.cancel)

    def close_all(self) -> None:
        """Close every queue, for the caller's end (their runners are cancelled with it)."""
        with self.lock:
            queues = list(self.queues.values())
            self.queues.clear()
            for queue in queues:  # those whose runner never started
                queue.closed = True
        del queues  # freed outside the lock, like every dropped call

    def snapshot(self) -> list[CallerQueueRow]:
        """A row per open queue, read without the lock. Any thread."""
        return [q.snapshot() for q in list(self.queues.values())]

    def has_user_items(self) -> bool:
        """Whether a queue other than a bookkeeping one has calls waiting. Any thread, no lock.

        A running call is not looked at here: it counts in the scheduler's `active`.
        """
        return any(q.items and not q.bookkeeping for q in list(self.queues.values()))


class FunctionQueue:
    """Calls with one key, run one at a time in order. Owned by a QueueTable (see the module doc)."""

    __slots__ = (
        "_after",
        "_finished",
        "_held",
        "_scope",
        "_successor",
        "_waker",
        "bookkeeping",
        "closed",
        "items",
        "key",
        "label",
        "running",
        "table",
    )

    def __init__(
        self, table: QueueTable, key: int, func: Callable[..., Any], bookkeeping: bool = False
    ) -> None:
        self.table = table
        self.key = key
        self.bookkeeping = bookkeeping
        """A bookkeeping queue: its running call counts in `Scheduler.bookkeeping`."""
        self.label = function_label(func)
        self.items: deque[QueueItem] = deque()
        """Calls waiting to run; each holds its function strongly. Under the table's lock."""
        self.closed = False
        """Set (under the table's lock) once the queue takes no more calls."""
        self.running = False
        self._finished = False
        self._scope: anyio.CancelScope | None = None
        self._waker: Waker | None = None
        self._after: FunctionQueue | None = None
        self._successor: FunctionQueue | None = None
        self._held: Callable[[], object] = self._hold(_lifetime_of(func))

    # --- called by the table, under its lock ---------------------------------------------------

    def track(self, func: Callable[..., Any]) -> None:
        """Keep the queue alive as long as `func`, the function of the call queued last.

        Under the table's lock. Cheap when the object is the one tracked already.
        """
        target = _lifetime_of(func)
        if self._held() is not target:
            self._held = self._hold(target)

    def follow(self, previous: FunctionQueue) -> None:
        """Start only once `previous` (closed, its call still unwinding) has finished.

        Under the table's lock.
        """
        self._after = previous
        previous._successor = self

    def _hold(self, target: object) -> Callable[[], object]:
        try:
            return weakref.ref(target, self._on_collected)
        except TypeError:  # no weak references to it: held until the queue is closed
            return lambda: target

    def _on_collected(self, _: object) -> None:
        # Any thread, any moment (even under the table's lock): only wake the runner.
        with contextlib.suppress(RuntimeError):
            self.table.scheduler.call_direct(self.wake)

    # --- loop thread ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Tell the runner that something changed. Loop thread only."""
        if self._waker is not None:
            self._waker.wake()

    def cancel(self) -> None:
        """Cancel the running call; the table has marked the queue closed. Loop thread only."""
        if self._scope is not None:
            self._scope.cancel()

    def snapshot(self) -> CallerQueueRow:
        """The queue's row in a caller snapshot (read without the lock, from any thread)."""
        return {"function": self.label, "pending": len(self.items), "running": self.running}

    async def run(self) -> None:
        """Run the queued calls until the queue retires, is closed, or the caller stops.

        A call that raises, whatever it raises (KeyboardInterrupt and SystemExit included), is
        logged and the queue goes on; only a genuine cancellation of this task (queue_close,
        the caller stopping) ends it.
        """
        table = self.table
        scheduler = table.scheduler
        lock = table.lock
        items = self.items
        engine = scheduler.engine
        bookkeeping = self.bookkeeping
        self._waker = waker = engine.waker()
        try:
            after = self._after
            if after is not None:
                # Shielded: even if this queue is closed meanwhile, its own successor relies
                # on it to finish only after `after`.
                with anyio.CancelScope(shield=True):
                    while not after._finished:
                        await waker.wait()
                self._after = None
            with anyio.CancelScope() as scope:
                self._scope = scope
                while True:
                    if self.closed:
                        break
                    if scheduler.state is not State.RUNNING:  # stopping: start nothing more
                        with lock:
                            self._close_locked()
                        break
                    try:
                        # No lock needed to take a call: popleft is atomic, and appending
                        # (under the lock) never races with the decision to retire (below).
                        item = items.popleft()
                    except IndexError:
                        with lock:
                            if self.closed:
                                break
                            if items:  # queued just now
                                continue
                            if self._held() is None:  # idle, its function gone: retire
                                self._close_locked()
                                break
                        await waker.wait()
                        continue
                    self.running = True
                    if bookkeeping:
                        scheduler.bookkeeping += 1
                    else:
                        scheduler.active += 1
                    result: Any = None
                    try:
                        result = item[0](*item[1], **item[2])
                        item = _NO_ITEM  # drop the function: it may be collected while awaited
                        if inspect.isawaitable(result):
                            await result
                    except BaseException as exc:
                        cancellation, error = engine.split_cancellation(exc)
                        if error is not None:
                            logger.error(
                                "queue_call of %s raised; the queue goes on",
                                self.label,
                                exc_info=error,
                            )
                        if cancellation is exc:
                            raise
                        if cancellation is not None:
                            raise cancellation from None
                    finally:
                        item, result = _NO_ITEM, None
                        self.running = False
                        if bookkeeping:
                            scheduler.bookkeeping -= 1
                        else:
                            scheduler.active -= 1
        finally:
            with lock:
                self._close_locked()
                dropped = self.take_items()  # only when cancelled: otherwise nothing waits
                self._finished = True
                successor = self._successor
                held, self._held = self._held, _nothing  # drop the weak reference now
            del dropped, held  # freed outside the lock: finalizers may queue calls
            if successor is not None:
                successor.wake()

    def take_items(self) -> list[QueueItem]:
        """Empty the queue and return what waited. Under the lock.

        The table frees the result after releasing the lock: dropping a call may run
        finalizers of its arguments, which may queue calls themselves.
        """
        dropped = list(self.items)
        self.items.clear()
        return dropped

    def _close_locked(self) -> None:
        """Take no more calls: a call queued from now on starts a new queue. Under the lock."""
        self.closed = True
        queues = self.table.queues
        if queues.get(self.key) is self:
            del queues[self.key]
