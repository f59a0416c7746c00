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


# --- workers in the registry (every caller has its row) --------------------------------------


def test_a_busy_worker_is_listed_in_all_callers_with_its_row(caller: Caller) -> None:
    started = threading.Event()
    release = threading.Event()

    def job() -> Caller:
        started.set()
        release.wait(TIMEOUT)
        return Caller.get(thread=threading.current_thread())

    pending = caller.to_thread(job)
    try:
        assert started.wait(TIMEOUT)
        [worker] = [c for c in Caller.all_callers() if c.parent is caller]
        row = worker.snapshot()
        assert row["worker"] is True
        assert row["parent"] == caller.name
        assert row["active"] == 1
        assert row["scheduled"] == 0
        assert row["protected"] is False
        assert caller.snapshot()["children"] == [worker.name]
        assert worker in Caller.all_callers(running_only=False)
    finally:
        release.set()
    assert pending.wait_sync(TIMEOUT) is worker
    assert worker in Caller.all_callers()  # idle in the pool: still a caller, still listed
    assert worker.snapshot()["active"] == 0


async def test_a_worker_that_stops_leaves_all_callers(caller: Caller) -> None:
    caller.max_idle_workers = 0  # no room in the pool: the worker stops after its call

    def worker_caller() -> Caller:
        return Caller.get(thread=threading.current_thread())

    with anyio.fail_after(TIMEOUT):
        worker = await caller.to_thread(worker_caller)
        await worker.stopped
    assert worker not in Caller.all_callers(running_only=False)
    assert worker not in caller.children


def test_every_child_named_in_a_snapshot_is_listed(caller: Caller) -> None:
    release = threading.Event()
    started = [threading.Event() for _ in range(2)]

    def job(event: threading.Event) -> None:
        event.set()
        release.wait(TIMEOUT)

    pendings = [caller.to_thread(job, event) for event in started]
    try:
        assert all(event.wait(TIMEOUT) for event in started)
        rows = {c.name: c.snapshot() for c in Caller.all_callers()}
        for row in rows.values():
            assert set(row["children"]) <= rows.keys(), row
        workers = [rows[name] for name in rows[caller.name]["children"]]
        assert len(workers) == 2
        assert all(w["worker"] and w["parent"] == caller.name for w in workers)
        assert all(w["active"] == 1 for w in workers)
    finally:
        release.set()
    for pending in pendings:
        pending.wait_sync(TIMEOUT)


def test_worker_names_stay_unique_when_a_caller_took_the_next_one(caller: Caller) -> None:
    def worker_name() -> str:
        return threading.current_thread().name

    first = caller.to_thread(worker_name).wait_sync(TIMEOUT)
    number = int(first.rsplit("-", 1)[1])
    squatters = [Caller.get(name=f"{caller.name}/worker-{number + i}") for i in (1, 2)]
    release = threading.Event()
    started = threading.Event()

    def hold_the_first_worker() -> None:
        started.set()
        release.wait(TIMEOUT)

    busy = caller.to_thread(hold_the_first_worker)  # the idle worker: the next needs a new one
    try:
        assert started.wait(TIMEOUT)
        second = caller.to_thread(worker_name).wait_sync(TIMEOUT)
    finally:
        release.set()
    busy.wait_sync(TIMEOUT)
    assert second not in {first, *(s.name for s in squatters)}
    names = [c.name for c in Caller.all_callers(running_only=False)]
    assert len(names) == len(set(names))
    # A worker is found by its name like any caller.
    [worker] = [c for c in caller.children if c.name == second]
    assert Caller.get(name=second) is worker
