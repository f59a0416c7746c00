"""Completion and inspection off the router thread, in a worker with a time limit.

`complete_request` and `inspect_request` run user code: jedi and IPython's inspector evaluate
properties, `__getattr__`, `__dir__` and `__repr__` of the user's objects. Run in the thread that
routes shell messages, a slow one would hold up every other request, comm message and
`input_reply` behind it; run in the shell thread, they would wait for the running cell. So they
run in a dedicated worker caller, `Introspection`, one at a time and in order, and the router
thread only waits for their outcome (asynchronously, so it keeps routing).

Each request has `time_limit` seconds from its arrival. When it is not answered in time the
client gets an empty answer (no matches / not found; the kernel logs a warning) and, if the
worker is still stuck in that request, the worker is retired: it ends once the user's code
returns, and a fresh worker serves the next requests. At most `max_retired` stuck workers are
kept waiting for their code to return; beyond that, requests get the empty answer at once.

The workers are [quiet][async_kernel._kernel.quiet_threads.quiet] threads: nothing they run changes the
process's warnings state, which the running cell owns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio

from async_kernel._kernel.debugger.threads import hide_from_debugger
from async_kernel._kernel.messaging import Message
from async_kernel._kernel.quiet_threads import quiet
from async_kernel.caller import Caller

__all__ = ["Introspector"]

logger = logging.getLogger("async_kernel.introspection")

Handler = Callable[[Message], dict[str, Any]]


class Introspector:
    """Runs introspection handlers in a worker caller, each within a time limit.

    `answer()` is called in the router's event loop (any backend); the handlers run in the
    worker's thread. Requests are answered in order of arrival.
    """

    def __init__(
        self,
        parent: Caller,
        *,
        time_limit: float = 5.0,
        max_retired: int = 4,
        name: str = "Introspection",
    ) -> None:
        self._parent = parent
        self._name = name
        self.time_limit = time_limit
        """Seconds a request may take, from its arrival, before it gets an empty answer."""
        self.max_retired = max_retired
        """Stuck workers kept waiting for their user code; beyond that, answer empty at once."""
        self._worker: Caller | None = None
        self._retired: list[Caller] = []
        self._numbers = 0
        self._lock: anyio.Lock | None = None

    async def answer(
        self, handler: Handler, msg: Message, fallback: dict[str, Any]
    ) -> dict[str, Any]:
        """The reply content of `handler(msg)`, or `fallback` if it is not ready in time.

        Router loop only. Cancelling the awaiting task abandons the request (the worker finishes
        it and its result is dropped).
        """
        deadline = time.monotonic() + self.time_limit
        if self._lock is None:
            self._lock = anyio.Lock()
        msg_type = msg["header"].get("msg_type")
        async with self._lock:  # FIFO: one request in the worker at a time, in order
            left = deadline - time.monotonic()
            worker = self._current_worker() if left > 0 else None
            if worker is None:
                logger.warning("%s got an empty answer: introspection is stuck", msg_type)
                return fallback
            pending = worker.call_soon(_run_quietly, handler, msg)
            with anyio.move_on_after(left):
                return await pending
            if pending.cancel():  # still running user code: leave this worker to it
                self._retire(worker)
            logger.warning(
                "%s was not answered within %s s: sent an empty answer", msg_type, self.time_limit
            )
            return fallback

    def _current_worker(self) -> Caller | None:
        self._retired = [w for w in self._retired if not w.stopped]
        worker = self._worker
        if worker is not None and worker.running:
            return worker
        if len(self._retired) >= self.max_retired:
            return None
        self._numbers += 1
        name = self._name if self._numbers == 1 else f"{self._name}-{self._numbers}"
        self._worker = self._parent.get(name=name, backend=self._parent.backend, protected=True)
        hide_from_debugger(self._worker.thread)
        return self._worker

    def _retire(self, worker: Caller) -> None:
        worker.stop(force=True)  # ends when the stuck call returns
        self._retired.append(worker)
        if self._worker is worker:
            self._worker = None

    def stop(self) -> None:
        """Stop the workers (shutdown). Any thread."""
        for worker in [self._worker, *self._retired]:
            if worker is not None:
                worker.stop(force=True)


def _run_quietly(handler: Handler, msg: Message) -> dict[str, Any]:
    with quiet():
        return handler(msg)
