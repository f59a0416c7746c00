"""call_soon, call_later, call_direct and Caller.current_pending."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from async_kernel import Caller, Pending, PendingCancelled, ThreadsafeEvent

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


def sync_call(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any], str]:
    return args, kwargs, threading.current_thread().name


async def async_call(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any], str]:
    await anyio.lowlevel.checkpoint()
    return args, kwargs, threading.current_thread().name


def sync_fail() -> None:
    raise KeyError("sync failure")


async def async_fail() -> None:
    await anyio.lowlevel.checkpoint()
    raise KeyError("async failure")


# --- call_soon ---------------------------------------------------------------------------------


async def test_call_soon_returns_a_pending(caller: Caller) -> None:
    pending = caller.call_soon(sync_call)
    assert isinstance(pending, Pending)
    with anyio.fail_after(TIMEOUT):
        await pending


@pytest.mark.parametrize("func", [sync_call, async_call], ids=["sync", "async"])
async def test_call_soon_runs_the_function_in_the_callers_thread_with_args_and_kwargs(
    caller: Caller, func: Any
) -> None:
    with anyio.fail_after(TIMEOUT):
        result = await caller.call_soon(func, 1, "two", three=3)
    assert result == ((1, "two"), {"three": 3}, caller.name)


@pytest.mark.parametrize("func", [sync_fail, async_fail], ids=["sync", "async"])
async def test_call_soon_exception_is_raised_by_await(caller: Caller, func: Any) -> None:
    with anyio.fail_after(TIMEOUT), pytest.raises(KeyError, match="failure"):
        await caller.call_soon(func)


@pytest.mark.parametrize("func", [sync_fail, async_fail], ids=["sync", "async"])
async def test_call_soon_exception_is_raised_by_result(caller: Caller, func: Any) -> None:
    pending = caller.call_soon(func)
    done = ThreadsafeEvent()
    pending.add_done_callback(lambda _: done.set())
    with anyio.fail_after(TIMEOUT):
        await done
    with pytest.raises(KeyError, match="failure"):
        pending.result()
    assert isinstance(pending.exception(), KeyError)


async def read_request_id() -> str:
    await anyio.lowlevel.checkpoint()
    return request_id.get()


@pytest.mark.parametrize("func", [request_id.get, read_request_id], ids=["sync", "async"])
async def test_call_soon_sees_the_submitters_contextvars(caller: Caller, func: Any) -> None:
    token = request_id.set("from the submitter")
    try:
        pending = caller.call_soon(func)
    finally:
        request_id.reset(token)
    with anyio.fail_after(TIMEOUT):
        assert await pending == "from the submitter"


async def test_call_soon_runs_calls_in_submission_order(caller: Caller) -> None:
    seen: list[int] = []
    pendings = [caller.call_soon(seen.append, i) for i in range(50)]
    with anyio.fail_after(TIMEOUT):
        for pending in pendings:
            await pending
    assert seen == list(range(50))


# --- call_later --------------------------------------------------------------------------------


async def test_call_later_runs_after_at_least_the_delay(caller: Caller) -> None:
    delay = 0.05
    submitted = time.monotonic()
    with anyio.fail_after(TIMEOUT):
        ran_at = await caller.call_later(delay, time.monotonic)
    assert ran_at - submitted >= delay


async def test_call_later_passes_args_and_kwargs(caller: Caller) -> None:
    with anyio.fail_after(TIMEOUT):
        result = await caller.call_later(0.001, async_call, 1, key="value")
    assert result == ((1,), {"key": "value"}, caller.name)


async def test_call_later_cancelled_before_it_starts_never_runs(
    caller: Caller, blocked: threading.Event
) -> None:
    ran: list[str] = []
    pending = caller.call_later(0.001, ran.append, "cancelled call")  # cannot start: blocked
    assert pending.cancel()
    blocked.set()
    # Timers fire in deadline order: once this later one has run, the cancelled one had its turn.
    with anyio.fail_after(TIMEOUT):
        await caller.call_later(0.05, ran.append, "later call")
        with pytest.raises(PendingCancelled):
            await pending
    assert ran == ["later call"]
    assert pending.cancelled()


async def test_call_later_cancelled_while_waiting_never_runs(caller: Caller) -> None:
    ran: list[str] = []
    pending = caller.call_later(TIMEOUT * 10, ran.append, "cancelled call")
    with anyio.fail_after(TIMEOUT):
        await caller.call_soon(lambda: None)  # the call_later has been picked up and waits
        assert caller.snapshot()["scheduled"] == 1
        assert pending.cancel()
        with pytest.raises(PendingCancelled):
            await pending
    assert caller.snapshot()["scheduled"] == 0  # no timer is left that could run it
    assert ran == []


# --- call_direct -------------------------------------------------------------------------------


async def test_call_direct_runs_in_the_callers_thread_and_returns_none(caller: Caller) -> None:
    called = ThreadsafeEvent()
    where: list[threading.Thread] = []

    def record(thread_list: list[threading.Thread]) -> None:
        thread_list.append(threading.current_thread())
        called.set()

    assert caller.call_direct(record, where) is None
    with anyio.fail_after(TIMEOUT):
        await called
    assert where == [caller.thread]


# --- current_pending ---------------------------------------------------------------------------


async def test_current_pending_inside_a_sync_call_is_that_calls_pending(caller: Caller) -> None:
    def current() -> list[Pending[Any] | None]:
        return [Caller.current_pending()]  # in a list: a returned awaitable would be awaited

    pending = caller.call_soon(current)
    with anyio.fail_after(TIMEOUT):
        assert await pending == [pending]


async def test_current_pending_inside_an_async_call_is_that_calls_pending(
    caller: Caller,
) -> None:
    async def current() -> list[Pending[Any] | None]:
        await anyio.lowlevel.checkpoint()
        return [Caller.current_pending()]

    pending = caller.call_soon(current)
    with anyio.fail_after(TIMEOUT):
        assert await pending == [pending]


async def test_current_pending_outside_any_call_is_none() -> None:
    assert Caller.current_pending() is None


def test_current_pending_in_a_plain_thread_is_none() -> None:
    assert Caller.current_pending() is None
