"""The per-function queue behind [Caller.queue_call][async_kernel.Caller.queue_call].

One task in the caller's loop per queued function: it runs the queued calls one at a time, in
submission order, inside the contextvars context of the first call. The function is held weakly
between calls, so the queue ends when the function (or a bound method's owner) is collected.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from async_kernel._backend import Waker, make_waker

if TYPE_CHECKING:
    from async_kernel.caller import Caller

logger = logging.getLogger("async_kernel.caller")


def function_label(func: Callable[..., Any]) -> str:
    """`module.qualname` of a callable, for snapshots and logs."""
    target = getattr(func, "__func__", func)
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}.{name}" if module else name


def _weak_reference(func: Callable[..., Any]) -> Callable[[], Callable[..., Any] | None]:
    """A weak reference to `func` when it supports one, else a strong holder.

    Builtin bound methods (``list.append`` of some list) are made afresh on every attribute
    access, so a weak reference to one would die at once: those are held strongly.
    """
    owner = getattr(func, "__self__", None)
    if owner is not None and not inspect.ismodule(owner) and not inspect.ismethod(func):
        return lambda: func
    try:
        if inspect.ismethod(func):
            return weakref.WeakMethod(func)
        return weakref.ref(func)
    except TypeError:
        return lambda: func


class FunctionQueue:
    """Calls to one function, run one at a time in order. Owned by a Caller; loop-thread state."""

    __slots__ = (
        "_closed",
        "_ref",
        "_scope",
        "_waker",
        "caller",
        "items",
        "key",
        "label",
        "running",
    )

    def __init__(self, caller: Caller, key: int, func: Callable[..., Any]) -> None:
        self.caller = caller
        self.key = key
        self.label = function_label(func)
        # Each item holds the function strongly, so submitted work is never dropped; only an
        # idle queue holds it weakly.
        self.items: deque[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = deque()
        self.running = False
        self._closed = False
        self._scope: anyio.CancelScope | None = None
        self._waker: Waker | None = None
        ref = _weak_reference(func)
        if isinstance(ref, weakref.ref):
            # Collected function: end the queue (from whatever thread the collector runs in).
            ref = type(ref)(func, self._on_collected)
        self._ref = ref  # kept so the collection callback stays registered

    def _on_collected(self, _: object) -> None:
        with contextlib.suppress(RuntimeError):
            self.caller.call_direct(self.close)

    def wake(self) -> None:
        """Tell the runner that items arrived. Loop thread only."""
        if self._waker is not None:
            self._waker.wake()

    def close(self) -> None:
        """Cancel the running call and drop the rest. Loop thread only."""
        self._closed = True
        self.items.clear()
        if self._scope is not None:
            self._scope.cancel()
        self.caller._forget_queue(self)

    def snapshot(self) -> dict[str, Any]:
        """The queue's row in a caller snapshot."""
        return {"function": self.label, "pending": len(self.items), "running": self.running}

    async def run(self) -> None:
        """Run queued calls until closed, cancelled, or the function is collected."""
        self._waker = waker = make_waker(self.caller.backend)
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._closed:
                    scope.cancel()
                while not self._closed:
                    if not self.items:
                        await waker.wait()
                        continue
                    func, args, kwargs = self.items.popleft()
                    self.running = True
                    self.caller._active += 1
                    try:
                        result = func(*args, **kwargs)
                        del func, args, kwargs
                        if inspect.isawaitable(result):
                            await result
                    except Exception:
                        logger.exception("queue_call of %s raised; the queue goes on", self.label)
                    finally:
                        self.running = False
                        self.caller._active -= 1
        finally:
            self._closed = True
            self.items.clear()
            self.caller._forget_queue(self)
