"""The registry of callers: every caller by name and by thread, and what `Caller.get` does.

One process-wide `registry` holds every caller by name (those made by `Caller.get` and the
`to_thread` workers alike, so names are unique among live callers and `all_callers` lists them
all) and by thread (every caller whose loop runs), numbers the workers, and is the only maker of
callers: `Caller.get` finds one or creates it here, and so does the worker pool.
`HybridGet` is the descriptor that makes `Caller.get` a classmethod on the class and a
parent-creating method on an instance.

Thread model: every method may be called from any thread. `lock` (reentrant) guards the two
tables, every caller's children, and a caller's moves to STOPPING and STOPPED (so that a parent
that starts stopping takes no new child). It is never held while a caller starts or is waited
for.
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Protocol, overload

from async_kernel._caller.engine import current_backend
from async_kernel._caller.lifecycle import State
from async_kernel.wire import Backend, validate_backend

if TYPE_CHECKING:
    from async_kernel.caller import Caller

__all__ = ["CallerRegistry", "GetCaller", "HybridGet", "registry"]

_LIVE = (State.STARTING, State.RUNNING)
"""The states in which `Caller.get` returns an existing caller."""


class CallerRegistry:
    """The process's callers by name and by thread (see the module doc)."""

    __slots__ = ("_worker_numbers", "by_name", "by_thread", "lock")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.by_name: dict[str, Caller] = {}
        self.by_thread: dict[int, Caller] = {}
        self._worker_numbers = itertools.count(1)

    # --- Caller.get ----------------------------------------------------------------------------

    def get(
        self,
        owner: type[Caller],
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
            return self._get_for_thread(owner, thread, protected)
        if name is None:
            return self._get_for_thread(owner, threading.current_thread(), protected)
        with self.lock:
            existing = self.by_name.get(name)
            if existing is not None and existing._scheduler.state in _LIVE:
                caller = existing
                created = False
            else:
                caller = owner._create(
                    name=name,
                    backend=chosen or current_backend() or "asyncio",
                    parent=parent,
                    protected=protected,
                )
                if parent is not None:  # first: a stopped parent refuses, nothing is entered
                    parent._adopt_child(caller)
                self.by_name[name] = caller
                created = True
        if created:
            caller._start_thread()
        caller._wait_ready()
        return caller

    def _get_for_thread(
        self, owner: type[Caller], thread: threading.Thread, protected: bool
    ) -> Caller:
        caller = self.by_thread.get(thread.ident or -1)
        if caller is not None and caller._scheduler.state in _LIVE:
            return caller
        if thread is not threading.current_thread():
            raise RuntimeError(f"No caller is running in thread {thread.name!r}")
        backend = current_backend()
        if backend is None:
            raise RuntimeError(
                "Caller.get() needs a running asyncio or trio event loop in this thread; "
                "pass name= (and backend=) to start a caller in a new thread"
            )
        return self._adopt_running_loop(owner, backend, protected)

    def _adopt_running_loop(self, owner: type[Caller], backend: Backend, protected: bool) -> Caller:
        """Create the caller of this thread's running loop and start its home task."""
        thread = threading.current_thread()
        with self.lock:
            name = thread.name
            if name in self.by_name and self.by_name[name]._scheduler.state is not State.STOPPED:
                name = f"{thread.name}-{thread.ident}"
            caller = owner._create(name=name, backend=backend, protected=protected)
            caller._bind_to_running_loop()
            self.by_name[name] = caller
            self.by_thread[threading.get_ident()] = caller
        caller._start_home_task()
        return caller

    # --- workers -------------------------------------------------------------------------------

    def start_worker(self, parent: Caller) -> Caller:
        """Make, start and return a new `to_thread` worker: a child of `parent`, numbered.

        The worker is entered by name like any caller, so `all_callers` (and the kernel's
        caller state) lists it. Its number is the next one whose name no live caller has (a
        caller made by `Caller.get` may have taken it), so names stay unique.
        """
        with self.lock:
            while True:
                name = f"{parent.name}/worker-{next(self._worker_numbers)}"
                taken = self.by_name.get(name)
                if taken is None or taken._scheduler.state is State.STOPPED:
                    break
            worker = type(parent)._create(
                name=name, backend=parent.backend, parent=parent, worker=True
            )
            parent._adopt_child(worker)  # first: a stopped parent refuses, nothing is entered
            self.by_name[name] = worker
        worker._start_thread()
        worker._wait_ready()
        return worker

    # --- the tables ----------------------------------------------------------------------------

    def register_thread(self, caller: Caller) -> None:
        """Enter `caller` as the caller of the current thread (its own new thread)."""
        with self.lock:
            self.by_thread[threading.get_ident()] = caller

    def unregister(self, caller: Caller) -> None:
        """Remove `caller` from both tables, where it is still the one entered."""
        with self.lock:
            if self.by_name.get(caller.name) is caller:
                del self.by_name[caller.name]
            thread = caller.thread
            thread_id = thread.ident if thread is not None else None
            if thread_id is not None and self.by_thread.get(thread_id) is caller:
                del self.by_thread[thread_id]

    def all_callers(self, running_only: bool) -> list[Caller]:
        """Every caller entered (by name: workers included): the running ones, or all of them."""
        with self.lock:
            callers = list(self.by_name.values())
        if running_only:
            return [c for c in callers if c._scheduler.state is State.RUNNING]
        return callers


registry = CallerRegistry()
"""The registry of this process."""


class GetCaller(Protocol):
    """The signature of `Caller.get`, as the class or an instance (the parent) offers it."""

    def __call__(
        self,
        *,
        name: str | None = None,
        thread: threading.Thread | None = None,
        backend: str | None = None,
        protected: bool = False,
    ) -> Caller:
        """Return a running caller; see the `Caller.get` documentation."""


class HybridGet:
    """`Caller.get`: a classmethod on the class and a method on an instance (the parent)."""

    @overload
    def __get__(self, instance: None, owner: type[Caller]) -> GetCaller: ...
    @overload
    def __get__(self, instance: Caller, owner: type[Caller]) -> GetCaller: ...
    def __get__(self, instance: Caller | None, owner: type[Caller]) -> GetCaller:
        def get(
            *,
            name: str | None = None,
            thread: threading.Thread | None = None,
            backend: str | None = None,
            protected: bool = False,
        ) -> Caller:
            return registry.get(
                owner,
                parent=instance,
                name=name,
                thread=thread,
                backend=backend,
                protected=protected,
            )

        get.__doc__ = "Return a running caller; see the `Caller.get` documentation."
        return get
