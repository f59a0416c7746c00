"""Stopping callers: stop(), stopped, protection, unstarted work, the registry, whole trees."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from async_kernel import Caller, CallerStoppedError, Pending, PendingCancelled, ThreadsafeEvent

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0


def noop() -> None:
    pass


# --- stop() and stopped ------------------------------------------------------------------------


async def test_stop_returns_true(caller: Caller) -> None:
    assert caller.stop() is True


async def test_stopped_is_awaitable(caller: Caller) -> None:
    caller.stop()
    with anyio.fail_after(TIMEOUT):
        await caller.stopped


def test_stopped_can_be_waited_for_from_a_plain_thread(caller: Caller) -> None:
    caller.stop()
    caller.stopped.wait_sync(TIMEOUT)
    assert caller.stopped


async def test_stopped_is_falsy_while_running_and_truthy_once_stopped(caller: Caller) -> None:
    assert not caller.stopped
    caller.stop()
    with anyio.fail_after(TIMEOUT):
        await caller.stopped
    assert caller.stopped


async def test_running_is_false_once_stop_is_called(caller: Caller) -> None:
    assert caller.running
    caller.stop()
    assert not caller.running
    with anyio.fail_after(TIMEOUT):
        await caller.stopped
    assert not caller.running


async def test_stop_ends_the_callers_thread(caller: Caller) -> None:
    caller.stop()
    with anyio.fail_after(TIMEOUT):
        await caller.stopped
    assert caller.thread is not None
    caller.thread.join(TIMEOUT)
    assert not caller.thread.is_alive()


async def test_stop_of_the_test_loops_caller_ends_it_without_ending_the_loop() -> None:
    caller = Caller.get()
    caller.stop()
    with anyio.fail_after(TIMEOUT):
        await caller.stopped
    assert Caller.get() is not caller
    assert Caller.get().running


async def test_protected_caller_ignores_stop(
    anyio_backend: str, new_name: Callable[[str], str]
) -> None:
    caller = Caller.get(name=new_name("protected"), backend=anyio_backend, protected=True)
    assert caller.protected
    assert caller.stop() is False
    assert caller.running
    with anyio.fail_after(TIMEOUT):
        assert await caller.call_soon(lambda: "still here") == "still here"


async def test_protected_caller_stops_when_forced(
    anyio_backend: str, new_name: Callable[[str], str]
) -> None:
    caller = Caller.get(name=new_name("protected"), backend=anyio_backend, protected=True)
    assert caller.stop(force=True) is True
    with anyio.fail_after(TIMEOUT):
        await caller.stopped


# --- work that never started -------------------------------------------------------------------


async def test_stop_cancels_calls_not_yet_started(caller: Caller, blocked: threading.Event) -> None:
    ran: list[int] = []
    pendings = [caller.call_soon(ran.append, i) for i in range(20)]
    caller.stop()
    blocked.set()
    with anyio.fail_after(TIMEOUT):
        await caller.stopped
    assert all(p.cancelled() for p in pendings)
    assert ran == []


async def test_awaiting_a_call_cancelled_by_stop_raises_pending_cancelled(
    caller: Caller, blocked: threading.Event
) -> None:
    pending = caller.call_soon(noop)
    caller.stop()
    blocked.set()
    with anyio.fail_after(TIMEOUT), pytest.raises(PendingCancelled):
        await pending


async def test_stop_cancels_a_running_async_call(caller: Caller) -> None:
    started = ThreadsafeEvent()

    async def forever() -> None:
        started.set()
        await anyio.sleep_forever()

    pending = caller.call_soon(forever)
    with anyio.fail_after(TIMEOUT):
        await started
        caller.stop()
        with pytest.raises(PendingCancelled):
            await pending


@pytest.mark.parametrize(
    "schedule",
    [
        pytest.param(lambda c: c.call_soon(noop), id="call_soon"),
        pytest.param(lambda c: c.call_later(0.01, noop), id="call_later"),
        pytest.param(lambda c: c.call_direct(noop), id="call_direct"),
        pytest.param(lambda c: c.to_thread(noop), id="to_thread"),
        pytest.param(lambda c: c.queue_call(noop), id="queue_call"),
    ],
)
async def test_scheduling_on_a_stopped_caller_raises_caller_stopped_error(
    caller: Caller, schedule: Callable[[Caller], Any]
) -> None:
    caller.stop()
    with anyio.fail_after(TIMEOUT):
        await caller.stopped
    with pytest.raises(CallerStoppedError, match="stopped") as info:
        schedule(caller)
    assert caller.name in str(info.value)


async def test_scheduling_on_a_stopping_caller_raises_caller_stopped_error(
    caller: Caller, blocked: threading.Event
) -> None:
    caller.stop()
    with pytest.raises(CallerStoppedError):
        caller.call_soon(noop)


# --- the registry ------------------------------------------------------------------------------


async def test_all_callers_lists_running_callers(caller: Caller) -> None:
    assert caller in Caller.all_callers()


async def test_all_callers_drops_stopped_callers(caller: Caller) -> None:
    caller.stop()
    with anyio.fail_after(TIMEOUT):
        await caller.stopped
    assert caller not in Caller.all_callers()
    assert caller not in Caller.all_callers(running_only=False)


async def test_all_callers_running_only_false_lists_stopping_callers(
    caller: Caller, blocked: threading.Event
) -> None:
    caller.stop()  # the loop is blocked, so the caller stays "stopping" until released
    assert caller not in Caller.all_callers()
    assert caller in Caller.all_callers(running_only=False)


# --- a whole tree --------------------------------------------------------------------------------


async def busy_forever(started: ThreadsafeEvent) -> None:
    started.set()
    await anyio.sleep_forever()


async def test_stopping_a_parent_with_busy_children_leaves_nothing_running(
    anyio_backend: str, new_name: Callable[[str], str]
) -> None:
    threads_before = set(threading.enumerate())
    parent = Caller.get(name=new_name("parent"), backend=anyio_backend)
    children = [parent.get(name=new_name(b), backend=b) for b in ("asyncio", "trio")]
    pendings: list[Pending[None]] = []
    with anyio.fail_after(TIMEOUT):
        for target in [parent, *children]:
            started = ThreadsafeEvent()
            pendings.append(target.call_soon(busy_forever, started))
            await started
        started = ThreadsafeEvent()
        pendings.append(parent.to_thread(busy_forever, started))
        await started
    tree = [parent, *parent.children]
    assert len(tree) == 4  # the parent, two children and one to_thread worker
    tree_threads = [c.thread for c in tree]

    parent.stop()
    with anyio.fail_after(TIMEOUT):
        await parent.stopped
        for pending in pendings:
            with pytest.raises(PendingCancelled):
                await pending

    assert all(p.cancelled() for p in pendings)
    assert not any(c.running for c in tree)
    assert all(c.stopped for c in tree)
    assert not any(c in Caller.all_callers(running_only=False) for c in tree)
    assert all(c.snapshot()["active"] == 0 for c in tree)
    for thread in tree_threads:
        assert thread is not None
        thread.join(TIMEOUT)
    leaked = [t for t in threading.enumerate() if t not in threads_before]
    assert leaked == []
    assert threading.active_count() <= len(threads_before)  # idle threads of others may end
