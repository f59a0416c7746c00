"""Caller.to_thread: worker threads with their own event loop, pooled, themselves callers."""

from __future__ import annotations

import threading

import anyio
import anyio.lowlevel
import pytest
import sniffio

from async_kernel import Caller, ThreadsafeEvent

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0


def current_thread() -> threading.Thread:
    return threading.current_thread()


async def test_to_thread_runs_a_sync_function_in_another_thread(caller: Caller) -> None:
    with anyio.fail_after(TIMEOUT):
        thread = await caller.to_thread(current_thread)
    assert thread is not caller.thread
    assert thread is not threading.current_thread()


async def test_to_thread_of_the_test_loops_caller_runs_in_another_thread() -> None:
    with anyio.fail_after(TIMEOUT):
        thread = await Caller.get().to_thread(current_thread)
    assert thread is not threading.current_thread()


async def test_to_thread_passes_args_and_kwargs(caller: Caller) -> None:
    def combine(a: int, b: int, *, c: int) -> int:
        return a * 100 + b * 10 + c

    with anyio.fail_after(TIMEOUT):
        assert await caller.to_thread(combine, 1, 2, c=3) == 123


async def test_a_blocking_function_in_to_thread_does_not_block_the_caller(
    caller: Caller,
) -> None:
    started = ThreadsafeEvent()
    release = threading.Event()

    def block() -> str:
        started.set()
        release.wait(TIMEOUT)
        return "unblocked"

    pending = caller.to_thread(block)
    try:
        with anyio.fail_after(TIMEOUT):
            await started
            assert await caller.call_soon(lambda: "the caller answers") == "the caller answers"
            assert not pending.done()
    finally:
        release.set()
    with anyio.fail_after(TIMEOUT):
        assert await pending == "unblocked"


async def test_to_thread_runs_async_functions_on_the_callers_backend(caller: Caller) -> None:
    async def backend_and_thread() -> tuple[str, threading.Thread]:
        await anyio.lowlevel.checkpoint()
        return sniffio.current_async_library(), threading.current_thread()

    with anyio.fail_after(TIMEOUT):
        backend, thread = await caller.to_thread(backend_and_thread)
    assert backend == caller.backend
    assert thread is not caller.thread


async def test_to_thread_reuses_an_idle_worker(caller: Caller) -> None:
    with anyio.fail_after(TIMEOUT):
        first = await caller.to_thread(current_thread)
        second = await caller.to_thread(current_thread)
    assert first is second


async def test_to_thread_keeps_at_most_max_idle_workers(caller: Caller) -> None:
    caller.max_idle_workers = 1
    release = threading.Event()
    started = [ThreadsafeEvent() for _ in range(3)]

    def block(started: ThreadsafeEvent) -> threading.Thread:
        started.set()
        release.wait(TIMEOUT)
        return threading.current_thread()

    pendings = [caller.to_thread(block, event) for event in started]
    try:
        with anyio.fail_after(TIMEOUT):
            for event in started:
                await event  # all three run at once, so three workers exist
    finally:
        release.set()
    with anyio.fail_after(TIMEOUT):
        threads = {await pending for pending in pendings}
    assert len(threads) == 3
    assert caller.snapshot()["idle_workers"] == 1


async def test_to_thread_workers_are_children_of_the_caller(caller: Caller) -> None:
    def worker_caller() -> Caller:
        return Caller.get(thread=threading.current_thread())

    with anyio.fail_after(TIMEOUT):
        worker = await caller.to_thread(worker_caller)
    assert worker in caller.children
    assert worker.parent is caller


async def test_a_worker_is_a_caller_marked_as_worker(caller: Caller) -> None:
    async def who_runs_me() -> tuple[bool, bool]:
        here = Caller.get()
        return here.snapshot()["worker"], here is caller

    with anyio.fail_after(TIMEOUT):
        is_worker, is_the_caller = await caller.to_thread(who_runs_me)
    assert is_worker
    assert not is_the_caller
    assert not caller.snapshot()["worker"]


async def test_a_worker_can_run_to_thread_itself(caller: Caller) -> None:
    async def nested() -> tuple[threading.Thread, threading.Thread, bool]:
        worker = Caller.get()
        inner = await worker.to_thread(current_thread)
        return threading.current_thread(), inner, inner in {c.thread for c in worker.children}

    with anyio.fail_after(TIMEOUT):
        outer_thread, inner_thread, inner_is_a_child = await caller.to_thread(nested)
    assert len({caller.thread, outer_thread, inner_thread}) == 3
    assert inner_is_a_child
