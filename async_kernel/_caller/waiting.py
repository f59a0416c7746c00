"""Waiting for several Pendings at once: `as_completed` and `wait`.

They need no caller: any task of an asyncio or trio loop, in any thread, may wait for Pendings of
any callers. [Caller.as_completed][async_kernel.Caller.as_completed] and
[Caller.wait][async_kernel.Caller.wait] delegate here.

Thread model: done callbacks run in whichever thread completes a Pending; they only append to a
deque and set a ThreadsafeEvent, and the waiting task does the rest.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Iterable
from typing import Any, Literal

import anyio

from async_kernel.pending import Pending, ThreadsafeEvent

__all__ = ["ReturnWhen", "as_completed", "wait"]

ReturnWhen = Literal["FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED"]


async def as_completed(
    pendings: Iterable[Pending[Any]], *, timeout: float | None = None
) -> AsyncGenerator[Pending[Any], None]:
    """Yield each Pending as it completes (see `Caller.as_completed`)."""
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
    pendings: Iterable[Pending[Any]],
    *,
    timeout: float | None = None,
    return_when: ReturnWhen = "ALL_COMPLETED",
) -> tuple[set[Pending[Any]], set[Pending[Any]]]:
    """Wait for `pendings` like `asyncio.wait`; return `(done, not_done)` (see `Caller.wait`)."""
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
        async with contextlib.aclosing(as_completed(todo - done)) as completed:
            async for p in completed:
                done.add(p)
                if enough((p,)):
                    break
    return done, todo - done
