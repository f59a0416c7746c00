"""A BaseException from user code (KeyboardInterrupt, SystemExit, ...) never ends the caller.

For every way user code runs in a caller (queued calls, call_soon, call_later, to_thread, done
callbacks, call_direct), raising a BaseException that is not an Exception leaves the caller's
loop and thread running: the next call runs. Where there is a Pending it carries the exception;
where there is none, the exception is logged with its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from async_kernel import Caller, Pending, ThreadsafeEvent

pytestmark = pytest.mark.anyio

TIMEOUT = 5.0


class CustomBaseException(BaseException):
    """A BaseException of the user's own."""


BASE_EXCEPTIONS = [KeyboardInterrupt, SystemExit, GeneratorExit, CustomBaseException]


@pytest.fixture(params=BASE_EXCEPTIONS, ids=lambda exc: exc.__name__)
def exc_type(request: pytest.FixtureRequest) -> type[BaseException]:
    return request.param


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.ERROR, logger="async_kernel"):
        yield caplog


def logged(caplog: pytest.LogCaptureFixture, exc_type: type[BaseException]) -> list[Any]:
    """The error records of async_kernel's loggers that carry a traceback of `exc_type`."""
    return [
        r
        for r in caplog.records
        if r.name.startswith("async_kernel")
        and r.levelno >= logging.ERROR
        and r.exc_info
        and r.exc_info[0] is exc_type
    ]


def raiser(exc_type: type[BaseException]) -> Any:
    def raise_it(*_: Any) -> None:
        raise exc_type("raised by user code")

    return raise_it


def async_raiser(exc_type: type[BaseException]) -> Any:
    async def raise_it(*_: Any) -> None:
        await anyio.lowlevel.checkpoint()
        raise exc_type("raised by user code")

    return raise_it


async def settle(pending: Pending[Any]) -> None:
    """Wait until `pending` is done, without raising its exception here."""
    done = ThreadsafeEvent()
    pending.add_done_callback(lambda _: done.set())
    await done


async def assert_still_serving(caller: Caller) -> None:
    with anyio.fail_after(TIMEOUT):
        assert await caller.call_soon(lambda: "still serving") == "still serving"
        assert await caller.call_soon(anyio.lowlevel.checkpoint) is None
    assert caller.running
    assert caller.thread is not None
    assert caller.thread.is_alive()


# --- queued calls: logged, and the queue goes on -----------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_queue_call_raising_a_base_exception_is_logged_and_the_queue_goes_on(
    caller: Caller, exc_type: type[BaseException], kind: str, errors: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    done = ThreadsafeEvent()
    fail = raiser(exc_type) if kind == "sync" else async_raiser(exc_type)

    async def item(value: str) -> None:
        if value == "boom":
            await fail()
        seen.append(value)
        if value == "after":
            done.set()

    def sync_item(value: str) -> None:
        if value == "boom":
            fail()
        seen.append(value)
        if value == "after":
            done.set()

    func = sync_item if kind == "sync" else item
    for value in ("before", "boom", "after"):
        caller.queue_call(func, value)
    with anyio.fail_after(TIMEOUT):
        await done
    assert seen == ["before", "after"]
    assert len(logged(errors, exc_type)) == 1
    await assert_still_serving(caller)


async def test_queue_call_raising_its_own_cancelled_error_on_asyncio_is_logged_and_goes_on(
    new_name: Any, errors: pytest.LogCaptureFixture
) -> None:
    # The item awaits a future somebody else cancelled: nobody cancelled the queue, so this is
    # an error of the item's, not the end of the queue.
    caller = Caller.get(name=new_name("asyncio"), backend="asyncio")
    seen: list[str] = []
    done = ThreadsafeEvent()

    async def item(value: str) -> None:
        if value == "boom":
            future = asyncio.get_running_loop().create_future()
            future.cancel()
            await future
        seen.append(value)
        if value == "after":
            done.set()

    for value in ("before", "boom", "after"):
        caller.queue_call(item, value)
    with anyio.fail_after(TIMEOUT):
        await done
    assert seen == ["before", "after"]
    assert len(logged(errors, asyncio.CancelledError)) == 1
    await assert_still_serving(caller)


async def test_queue_close_of_a_running_call_is_a_cancellation_not_an_error(
    caller: Caller, errors: pytest.LogCaptureFixture
) -> None:
    started = ThreadsafeEvent()
    unwound = ThreadsafeEvent()
    ran: list[int] = []

    async def item(i: int) -> None:
        ran.append(i)
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            unwound.set()

    caller.queue_call(item, 0)
    caller.queue_call(item, 1)
    with anyio.fail_after(TIMEOUT):
        await started
        caller.queue_close(item)
        await unwound
        while caller.snapshot()["queues"]:  # the queue ends once its call has unwound
            await anyio.lowlevel.checkpoint()
    assert ran == [0]
    assert [r for r in errors.records if r.levelno >= logging.ERROR] == []
    await assert_still_serving(caller)


async def test_stop_while_a_queued_call_runs_ends_the_caller(caller: Caller) -> None:
    started = ThreadsafeEvent()

    async def item() -> None:
        started.set()
        await anyio.sleep_forever()

    caller.queue_call(item)
    with anyio.fail_after(TIMEOUT):
        await started
        caller.stop()
        await caller.stopped


# --- calls with a Pending: the Pending carries the exception -----------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_call_soon_raising_a_base_exception_completes_its_pending_with_it(
    caller: Caller, exc_type: type[BaseException], kind: str
) -> None:
    pending = caller.call_soon(raiser(exc_type) if kind == "sync" else async_raiser(exc_type))
    with anyio.fail_after(TIMEOUT):
        await settle(pending)
    assert isinstance(pending.exception(), exc_type)
    with pytest.raises(exc_type):
        pending.result()
    await assert_still_serving(caller)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_call_later_raising_a_base_exception_completes_its_pending_with_it(
    caller: Caller, exc_type: type[BaseException], kind: str
) -> None:
    func = raiser(exc_type) if kind == "sync" else async_raiser(exc_type)
    pending = caller.call_later(0.001, func)
    with anyio.fail_after(TIMEOUT):
        await settle(pending)
    assert isinstance(pending.exception(), exc_type)
    await assert_still_serving(caller)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_to_thread_raising_a_base_exception_completes_its_pending_with_it(
    caller: Caller, exc_type: type[BaseException], kind: str
) -> None:
    func = raiser(exc_type) if kind == "sync" else async_raiser(exc_type)
    pending = caller.to_thread(func)
    with anyio.fail_after(TIMEOUT):
        await settle(pending)
    assert isinstance(pending.exception(), exc_type)
    await assert_still_serving(caller)
    with anyio.fail_after(TIMEOUT):  # the worker (reused from the pool) still serves too
        assert await caller.to_thread(threading.current_thread) is not caller.thread


async def test_call_later_raising_its_own_cancelled_error_on_asyncio_leaves_the_caller_running(
    new_name: Any,
) -> None:
    caller = Caller.get(name=new_name("asyncio"), backend="asyncio")

    async def cancelled_by_somebody_else() -> None:
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    pending = caller.call_later(0.001, cancelled_by_somebody_else)
    with anyio.fail_after(TIMEOUT):
        await settle(pending)
    await assert_still_serving(caller)


# --- no Pending: logged ------------------------------------------------------------------------


async def test_done_callback_raising_a_base_exception_is_logged_and_the_rest_still_run(
    caller: Caller, exc_type: type[BaseException], errors: pytest.LogCaptureFixture
) -> None:
    release = ThreadsafeEvent()
    after = ThreadsafeEvent()

    async def wait_for_release() -> str:
        await release
        return "released"

    pending = caller.call_soon(wait_for_release)
    pending.add_done_callback(raiser(exc_type))  # runs in the caller's thread, on completion
    pending.add_done_callback(lambda _: after.set())
    release.set()
    with anyio.fail_after(TIMEOUT):
        await after
        assert await pending == "released"
    assert len(logged(errors, exc_type)) == 1
    await assert_still_serving(caller)


def test_done_callback_added_after_completion_raising_a_base_exception_is_logged(
    exc_type: type[BaseException], errors: pytest.LogCaptureFixture
) -> None:
    pending: Pending[int] = Pending()
    pending.set_result(1)
    pending.add_done_callback(raiser(exc_type))  # runs at once, here
    assert len(logged(errors, exc_type)) == 1


async def test_call_direct_raising_a_base_exception_is_logged(
    caller: Caller, exc_type: type[BaseException], errors: pytest.LogCaptureFixture
) -> None:
    ran = ThreadsafeEvent()
    caller.call_direct(raiser(exc_type))
    caller.call_direct(ran.set)
    with anyio.fail_after(TIMEOUT):
        await ran
    await assert_still_serving(caller)
    assert len(logged(errors, exc_type)) == 1
