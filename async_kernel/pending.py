"""Thread-safe results: [Pending][async_kernel.Pending] and [ThreadsafeEvent][async_kernel.ThreadsafeEvent].

Both can be awaited from an asyncio or a trio event loop in any thread, and waited for
synchronously from plain threads. Both complete exactly once: completion is a check-and-set
under the object's lock, so of two threads completing one object at the same moment one wins
and the other is refused, and the outcome never changes afterwards. Completion callbacks run in
the thread that completes the object; a callback added after completion runs at once in the
thread that adds it. Whatever a callback raises (KeyboardInterrupt and SystemExit included) is
logged, never propagated.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging
import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from async_kernel._caller.engine import wait_for_wakeup
from async_kernel._interruptible import interruptible

if TYPE_CHECKING:
    from async_kernel.caller import Caller

__all__ = ["InvalidStateError", "Pending", "PendingCancelled", "ThreadsafeEvent"]

T = TypeVar("T")

logger = logging.getLogger("async_kernel.pending")

InvalidStateError = concurrent.futures.InvalidStateError
"""Raised by `result()` / `exception()` of a Pending that is not done yet."""


class PendingCancelled(Exception):
    """Raised when awaiting, or asking the result of, a cancelled [Pending][async_kernel.Pending].

    It is an ordinary exception, not the event loop's cancellation exception, so a task awaiting a
    cancelled Pending is not itself considered cancelled.
    """


class _Completion:
    """Shared machinery: a one-shot, thread-safe 'done' flag with callbacks and waiters."""

    __slots__ = ("__weakref__", "_callbacks", "_done", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._callbacks: list[Callable[[Any], Any]] = []

    def done(self) -> bool:
        """True once complete. Thread-safe, never blocks."""
        return self._done

    def add_done_callback(self, fn: Callable[[Self], Any]) -> None:
        """Call `fn(self)` when done; at once (in this thread) if already done.

        Thread-safety: callable from any thread. The callback runs in the thread that completes
        this object; whatever it raises (any BaseException) is logged, never propagated, and
        the remaining callbacks still run.
        """
        with self._lock:
            if not self._done:
                self._callbacks.append(fn)
                return
        self._run_callback(fn)

    def remove_done_callback(self, fn: Callable[[Self], Any]) -> int:
        """Remove every registration of `fn`; return how many were removed. Thread-safe."""
        with self._lock:
            before = len(self._callbacks)
            self._callbacks = [cb for cb in self._callbacks if cb != fn]
            return before - len(self._callbacks)

    def _complete(self) -> bool:
        """Mark done and run callbacks; False (and nothing done) if it was already done."""
        with self._lock:
            if self._done:
                return False
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
        self._run_callbacks(callbacks)
        return True

    def _run_callbacks(self, callbacks: list[Callable[[Any], Any]]) -> None:
        for fn in callbacks:
            self._run_callback(fn)

    def _run_callback(self, fn: Callable[[Any], Any]) -> None:
        try:
            fn(self)
        except BaseException:  # KeyboardInterrupt too: it must not end the completing loop
            logger.exception("Exception in done callback %r of %r", fn, self)

    def _register_waker(self, wake: Callable[[], None]) -> Callable[[], None]:
        def callback(_: Any) -> None:
            wake()

        self.add_done_callback(callback)

        def unregister() -> None:
            self.remove_done_callback(callback)

        return unregister

    async def _wait_done(self) -> None:
        if not self._done:
            await wait_for_wakeup(self._register_waker)

    def _wait_done_sync(self, timeout: float | None) -> None:
        if self._done:
            return
        event = threading.Event()

        def wake(_: Any) -> None:
            event.set()

        self.add_done_callback(wake)
        try:
            if _block(event, timeout):
                return
        finally:
            if not event.is_set():  # timed out (or interrupted): withdraw the callback
                self.remove_done_callback(wake)
        if not self._done:  # it may have completed between the timeout and the withdrawal
            raise TimeoutError(f"{self!r} was not done within {timeout} s")


@interruptible
def _block(event: threading.Event, timeout: float | None) -> bool:
    """Block in `event.wait(timeout)`: where an interrupt may stop a cell in `wait_sync`."""
    return event.wait(timeout)


class ThreadsafeEvent(_Completion):
    """A one-shot event that can be set from any thread and waited for from anywhere.

    `await event` works on asyncio and trio in any thread; `event.wait_sync(timeout)` blocks a
    plain thread; `bool(event)` is True once set. Used for [Caller.stopped][async_kernel.Caller.stopped].
    """

    __slots__ = ()

    def set(self) -> None:
        """Set the event and wake every waiter. Thread-safe; idempotent."""
        self._complete()

    def is_set(self) -> bool:
        """True once set."""
        return self._done

    def __bool__(self) -> bool:
        return self._done

    def wait_sync(self, timeout: float | None = None) -> None:
        """Block this thread until set; TimeoutError after `timeout` seconds.

        Thread-safe; nothing stays registered after a timeout, so polling is fine.
        """
        self._wait_done_sync(timeout)

    def __await__(self) -> Generator[Any, None, None]:
        return self._wait_done().__await__()

    def __repr__(self) -> str:
        return f"<ThreadsafeEvent {'set' if self._done else 'unset'}>"


class Pending(_Completion, Generic[T]):
    """The eventual result of a call scheduled on a [Caller][async_kernel.Caller].

    - `await pending` from any thread running asyncio or trio returns the result, raises the
      call's exception, or raises [PendingCancelled][async_kernel.PendingCancelled]. Cancelling the
      awaiting task only stops the wait: the call goes on (use `cancel()` to stop it).
    - `wait_sync(timeout)` does the same for plain threads.
    - `cancel()` stops the call: not started yet, it never starts; running and async, its cancel
      scope is cancelled in the caller's thread. A running synchronous function cannot be
      interrupted and completes normally.
    - A Pending completes once: the first completion (result, exception or cancellation) wins
      and the outcome never changes afterwards.
    - A *free-standing* Pending, ``Pending()`` with no caller, is completed by whoever holds it,
      with [set_result][async_kernel.Pending.set_result] or
      [set_exception][async_kernel.Pending.set_exception] (or `cancel()`), from any thread;
      awaiting it works as for any other Pending.

    Every method is thread-safe.
    """

    __slots__ = (
        "_args",
        "_cancel_message",
        "_cancel_requested",
        "_canceller",
        "_context",
        "_delay",
        "_exception",
        "_func",
        "_kwargs",
        "_result",
        "_started",
        "caller",
    )

    def __init__(
        self,
        func: Callable[..., Any] | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        caller: Caller | None = None,
        context: contextvars.Context | None = None,
        delay: float = 0.0,
    ) -> None:
        super().__init__()
        self.caller = caller
        """The caller the call was scheduled on (None for a free-standing Pending)."""
        self._func = func
        self._args = args
        self._kwargs = kwargs if kwargs is not None else {}
        self._context = context
        self._delay = delay
        self._result: T  # set on completion; read only once done without an exception
        self._exception: BaseException | None = None
        self._cancel_requested = False
        self._cancel_message: str | None = None
        self._canceller: Callable[[], None] | None = None
        self._started = False

    # --- state -------------------------------------------------------------------------------

    def cancelled(self) -> bool:
        """True if the Pending completed as cancelled."""
        return self._done and isinstance(self._exception, PendingCancelled)

    def result(self) -> T:
        """The call's result; raise its exception, PendingCancelled, or InvalidStateError if not done."""
        if not self._done:
            raise InvalidStateError(f"{self!r} is not done")
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self) -> BaseException | None:
        """The call's exception (None on success); PendingCancelled raised if it was cancelled."""
        if not self._done:
            raise InvalidStateError(f"{self!r} is not done")
        if isinstance(self._exception, PendingCancelled):
            raise self._exception
        return self._exception

    def wait_sync(self, timeout: float | None = None) -> T:
        """Block this (plain) thread until done and return `result()`.

        Raises TimeoutError after `timeout` seconds, leaving nothing registered (polling with
        short timeouts is fine). Calling it in the thread of the caller that runs the call would
        deadlock, so that raises RuntimeError instead. Thread-safe.
        """
        if not self._done and self.caller is not None and self.caller._is_own_thread():
            raise RuntimeError("wait_sync() in the caller's own thread would deadlock; await it")
        self._wait_done_sync(timeout)
        return self.result()

    def __await__(self) -> Generator[Any, None, T]:
        if not self._done:
            yield from self._wait_done().__await__()
        return self.result()

    # --- cancellation ------------------------------------------------------------------------

    def cancel(self, msg: str | None = None) -> bool:
        """Request cancellation; False if already done.

        Not started: completes as cancelled at once. Running: its cancel scope is cancelled from
        the caller's thread, and the Pending completes when the function unwinds. Thread-safe.
        """
        with self._lock:
            if self._done:
                return False
            self._cancel_requested = True
            self._cancel_message = msg
            started = self._started
            canceller = self._canceller
        if not started:
            return self._set_cancelled()  # False if a completion got in first
        if canceller is not None:
            canceller()
        return True

    # --- completing a free-standing Pending -------------------------------------------------

    def set_result(self, value: T) -> None:
        """Complete this free-standing Pending with `value`; its awaiters get `value`.

        Thread-safe: the first completion wins. Raises InvalidStateError if the Pending is
        already done (completed, failed or cancelled), and RuntimeError if it belongs to a
        caller's call (that call completes it; use `cancel()` to stop it).
        """
        self._check_free_standing("set_result")
        if not self._set_result(value):
            raise InvalidStateError(f"{self!r} is already done")

    def set_exception(self, exc: BaseException) -> None:
        """Complete this free-standing Pending with the exception `exc`, raised to its awaiters.

        Thread-safe: the first completion wins. Raises InvalidStateError if the Pending is
        already done, RuntimeError if it belongs to a caller's call, and TypeError if `exc` is
        not an exception instance.
        """
        self._check_free_standing("set_exception")
        if not isinstance(exc, BaseException):
            raise TypeError(f"set_exception() needs an exception instance, not {exc!r}")
        if not self._set_exception(exc):
            raise InvalidStateError(f"{self!r} is already done")

    def _check_free_standing(self, method: str) -> None:
        if self.caller is not None:
            raise RuntimeError(
                f"{method}() is for free-standing Pendings; {self!r} is completed by its call"
            )

    # --- completion (used by Caller) ---------------------------------------------------------

    def _claim_start(self) -> bool:
        """Mark as started; False if cancelled (or done) before it could start."""
        with self._lock:
            if self._done or self._cancel_requested:
                return False
            self._started = True
            return True

    def _release(self) -> None:
        self._func = None
        self._args = ()
        self._kwargs = {}
        self._context = None
        self._canceller = None

    def _resolve(self, result: Any, exception: BaseException | None) -> bool:
        """Complete with `result` or `exception` unless already done; True if this call did it.

        The check and the writes happen under the lock, so a racing second completion can
        neither win too nor overwrite the first one's outcome.
        """
        with self._lock:
            if self._done:
                return False
            self._result = result
            self._exception = exception
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
        self._release()  # outside the lock: freeing the call's arguments may run finalizers
        self._run_callbacks(callbacks)
        return True

    def _set_result(self, result: Any) -> bool:
        """Complete with `result`; False (nothing changed) if already done. Any thread."""
        return self._resolve(result, None)

    def _set_exception(self, exc: BaseException) -> bool:
        """Complete with `exc`; False (nothing changed) if already done. Any thread."""
        return self._resolve(None, exc)

    def _set_cancelled(self) -> bool:
        """Complete as cancelled; False (nothing changed) if already done. Any thread."""
        if self._done:
            return False
        return self._resolve(None, PendingCancelled(self._cancel_message or "cancelled"))

    def __repr__(self) -> str:
        func = self._func
        name = getattr(func, "__qualname__", None) or repr(func) if func is not None else ""
        if not self._done:
            state = "running" if self._started else "pending"
        elif isinstance(self._exception, PendingCancelled):
            state = "cancelled"
        elif self._exception is not None:
            state = f"raised {type(self._exception).__name__}"
        else:
            state = "done"
        return f"<Pending {name} {state}>".replace("  ", " ")
