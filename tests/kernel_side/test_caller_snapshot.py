"""Caller.snapshot: the caller's row of the caller_state_reply wire contract."""

from __future__ import annotations

import threading
from collections.abc import Callable

import anyio
import pytest

from async_kernel import Caller, PendingCancelled, ThreadsafeEvent

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0

CONTRACT_KEYS = {
    "name",
    "thread_id",
    "backend",
    "running",
    "protected",
    "parent",
    "children",
    "worker",
    "idle_workers",
    "scheduled",
    "active",
    "queues",
}


def test_snapshot_has_the_contract_keys(caller: Caller) -> None:
    assert set(caller.snapshot()) >= CONTRACT_KEYS


def test_snapshot_describes_the_caller(caller: Caller) -> None:
    snapshot = caller.snapshot()
    assert caller.thread is not None
    assert snapshot["name"] == caller.name
    assert snapshot["thread_id"] == caller.thread.ident
    assert snapshot["backend"] == caller.backend
    assert snapshot["running"] is True
    assert snapshot["protected"] is False
    assert snapshot["parent"] is None
    assert snapshot["children"] == []
    assert snapshot["worker"] is False
    assert snapshot["idle_workers"] == 0
    assert snapshot["scheduled"] == 0
    assert snapshot["active"] == 0
    assert snapshot["queues"] == []


def test_snapshot_names_parent_and_children(caller: Caller, new_name: Callable[[str], str]) -> None:
    child = caller.get(name=new_name("child"))
    assert caller.snapshot()["children"] == [child.name]
    assert child.snapshot()["parent"] == caller.name


async def test_snapshot_running_is_false_once_stopped(caller: Caller) -> None:
    caller.stop()
    with anyio.fail_after(TIMEOUT):
        await caller.stopped
    assert caller.snapshot()["running"] is False


def test_snapshot_active_is_one_while_a_sync_call_blocks_the_caller(
    caller: Caller, blocked: threading.Event
) -> None:
    assert caller.snapshot()["active"] == 1
    blocked.set()
    caller.call_soon(lambda: None).wait_sync(TIMEOUT)
    assert caller.snapshot()["active"] == 0


def test_snapshot_counts_calls_scheduled_behind_a_blocked_loop(
    caller: Caller, blocked: threading.Event
) -> None:
    pendings = [caller.call_soon(lambda: None) for _ in range(3)]
    assert caller.snapshot()["scheduled"] == 3
    blocked.set()
    for pending in pendings:
        pending.wait_sync(TIMEOUT)
    assert caller.snapshot()["scheduled"] == 0


async def test_snapshot_counts_running_async_calls_as_active(caller: Caller) -> None:
    started = ThreadsafeEvent()
    release = ThreadsafeEvent()

    async def wait_for_release() -> None:
        started.set()
        await release

    pending = caller.call_soon(wait_for_release)
    with anyio.fail_after(TIMEOUT):
        await started
        assert caller.snapshot()["active"] == 1
        release.set()
        await pending
    assert caller.snapshot()["active"] == 0


async def test_snapshot_counts_a_waiting_call_later_as_scheduled(caller: Caller) -> None:
    pending = caller.call_later(TIMEOUT * 10, lambda: None)
    with anyio.fail_after(TIMEOUT):
        await caller.call_soon(lambda: None)  # the call_later has been picked up and waits
    assert caller.snapshot()["scheduled"] == 1
    pending.cancel()
    with anyio.fail_after(TIMEOUT), pytest.raises(PendingCancelled):
        await pending
    assert caller.snapshot()["scheduled"] == 0


async def test_snapshot_queue_row_counts_the_items_waiting_behind_the_running_one(
    caller: Caller,
) -> None:
    started = ThreadsafeEvent()
    release = ThreadsafeEvent()

    async def handler(item: int) -> None:
        if item == 0:
            started.set()
            await release

    caller.queue_call(handler, 0)
    try:
        with anyio.fail_after(TIMEOUT):
            await started
        for item in (1, 2, 3):
            caller.queue_call(handler, item)
        rows = caller.snapshot()["queues"]
    finally:
        release.set()
    assert len(rows) == 1
    assert rows[0]["function"].endswith("handler")
    assert rows[0]["pending"] == 3
    assert rows[0]["running"] is True


def test_snapshot_of_a_worker_says_so(caller: Caller) -> None:
    def worker_snapshot() -> dict[str, object]:
        return Caller.get(thread=threading.current_thread()).snapshot()

    snapshot = caller.to_thread(worker_snapshot).wait_sync(TIMEOUT)
    assert snapshot["worker"] is True
    assert snapshot["parent"] == caller.name
    assert caller.snapshot()["idle_workers"] == 1


# --- user work and bookkeeping queues (the kernel's `working` rule reads these) -----------------


def test_an_idle_caller_has_no_user_work(caller: Caller) -> None:
    assert caller._has_user_work() is False


def test_a_blocked_call_and_the_calls_behind_it_are_user_work(
    caller: Caller, blocked: threading.Event
) -> None:
    assert caller._has_user_work() is True  # active
    pending = caller.call_soon(lambda: None)
    blocked.set()
    pending.wait_sync(TIMEOUT)
    assert caller._has_user_work() is False


async def test_a_call_later_in_its_delay_is_user_work(caller: Caller) -> None:
    pending = caller.call_later(TIMEOUT * 10, lambda: None)
    with anyio.fail_after(TIMEOUT):
        await caller.call_soon(lambda: None)  # the call_later has been picked up and waits
    assert caller._has_user_work() is True
    pending.cancel()
    with anyio.fail_after(TIMEOUT), pytest.raises(PendingCancelled):
        await pending
    assert caller._has_user_work() is False


async def test_queued_calls_are_user_work(caller: Caller) -> None:
    started = ThreadsafeEvent()
    release = ThreadsafeEvent()
    done = ThreadsafeEvent()

    async def handler(item: int) -> None:
        if item == 0:
            started.set()
            await release
        if item == 2:
            done.set()

    for item in range(3):
        caller.queue_call(handler, item)
    try:
        with anyio.fail_after(TIMEOUT):
            await started
        assert caller._has_user_work() is True
    finally:
        release.set()
    with anyio.fail_after(TIMEOUT):
        await done
        await caller.call_soon(lambda: None)  # the queue's last call has returned
    assert caller._has_user_work() is False


async def test_a_bookkeeping_queue_is_active_in_the_snapshot_but_not_user_work(
    caller: Caller,
) -> None:
    started = ThreadsafeEvent()
    release = ThreadsafeEvent()

    async def request(item: int) -> None:
        if item == 0:
            started.set()
            await release

    for item in range(3):
        caller._queue_bookkeeping(request, item)
    try:
        with anyio.fail_after(TIMEOUT):
            await started
        row = caller.snapshot()
        assert row["active"] == 1  # the wire's `active` still counts every running call
        [queue] = row["queues"]
        assert queue["running"] is True
        assert queue["pending"] == 2
        assert caller._has_user_work() is False
        user_started = ThreadsafeEvent()

        async def user_handler() -> None:
            user_started.set()
            await release

        caller.queue_call(user_handler)  # a user queue beside it is user work
        with anyio.fail_after(TIMEOUT):
            await user_started
        assert caller._has_user_work() is True
        assert caller.snapshot()["active"] == 2
    finally:
        release.set()
