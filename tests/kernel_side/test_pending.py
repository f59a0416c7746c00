"""Pending: awaitable from any backend and thread, wait_sync, state, cancel, done callbacks."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from async_kernel import Caller, InvalidStateError, Pending, PendingCancelled, ThreadsafeEvent

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0
BACKENDS = ["asyncio", "trio"]


async def answer() -> int:
    await anyio.lowlevel.checkpoint()
    return 42


@pytest.fixture
def gate() -> Iterator[ThreadsafeEvent]:
    """An event that calls can wait on; set at teardown so nothing waits forever."""
    event = ThreadsafeEvent()
    yield event
    event.set()


async def wait_for(event: ThreadsafeEvent) -> str:
    await event
    return "released"


# --- awaiting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("caller_backend", BACKENDS)
async def test_await_returns_the_result_on_either_backend(
    caller_backend: str, new_name: Callable[[str], str]
) -> None:
    caller = Caller.get(name=new_name(caller_backend), backend=caller_backend)
    with anyio.fail_after(TIMEOUT):
        assert await caller.call_soon(answer) == 42


@pytest.mark.parametrize("other_backend", BACKENDS)
async def test_await_works_in_another_callers_thread(
    caller: Caller, other_backend: str, new_name: Callable[[str], str]
) -> None:
    other = Caller.get(name=new_name(other_backend), backend=other_backend)

    async def await_there() -> int:
        return await caller.call_soon(answer)

    with anyio.fail_after(TIMEOUT):
        assert await other.call_soon(await_there) == 42


async def test_await_of_a_pending_already_done_returns_at_once(caller: Caller) -> None:
    pending = caller.call_soon(answer)
    with anyio.fail_after(TIMEOUT):
        await pending
    assert pending.done()
    assert await pending == 42


def test_wait_sync_returns_the_result_in_a_plain_thread(caller: Caller) -> None:
    results: list[int] = []
    thread = threading.Thread(
        target=lambda: results.append(caller.call_soon(answer).wait_sync(TIMEOUT))
    )
    thread.start()
    thread.join(TIMEOUT)
    assert results == [42]


def test_wait_sync_raises_the_calls_exception(caller: Caller) -> None:
    def fail() -> None:
        raise LookupError("from the call")

    with pytest.raises(LookupError, match="from the call"):
        caller.call_soon(fail).wait_sync(TIMEOUT)


def test_wait_sync_raises_timeout_error_when_not_done_in_time(
    caller: Caller, gate: ThreadsafeEvent
) -> None:
    pending = caller.call_soon(wait_for, gate)
    with pytest.raises(TimeoutError):
        pending.wait_sync(0.01)
    assert not pending.done()


def test_wait_sync_in_the_callers_own_thread_raises_runtime_error(caller: Caller) -> None:
    def wait_on_own_call() -> str:
        own = caller.call_soon(answer)
        try:
            own.wait_sync(TIMEOUT)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    message = caller.call_soon(wait_on_own_call).wait_sync(TIMEOUT)
    assert "deadlock" in message


# --- state -------------------------------------------------------------------------------------


def test_result_before_done_raises_invalid_state_error(
    caller: Caller, gate: ThreadsafeEvent
) -> None:
    pending = caller.call_soon(wait_for, gate)
    with pytest.raises(InvalidStateError):
        pending.result()


def test_exception_before_done_raises_invalid_state_error(
    caller: Caller, gate: ThreadsafeEvent
) -> None:
    pending = caller.call_soon(wait_for, gate)
    with pytest.raises(InvalidStateError):
        pending.exception()


async def test_done_is_false_until_the_call_completes(
    caller: Caller, gate: ThreadsafeEvent
) -> None:
    pending = caller.call_soon(wait_for, gate)
    assert not pending.done()
    gate.set()
    with anyio.fail_after(TIMEOUT):
        assert await pending == "released"
    assert pending.done()


async def test_exception_of_a_successful_call_is_none(caller: Caller) -> None:
    pending = caller.call_soon(answer)
    with anyio.fail_after(TIMEOUT):
        await pending
    assert pending.exception() is None
    assert pending.result() == 42


# --- cancel ------------------------------------------------------------------------------------


async def test_cancel_of_a_pending_not_started_marks_it_cancelled(
    caller: Caller, blocked: threading.Event
) -> None:
    ran: list[str] = []
    pending = caller.call_soon(ran.append, "ran")
    assert pending.cancel("not wanted")
    assert pending.cancelled()
    blocked.set()
    with anyio.fail_after(TIMEOUT):
        await caller.call_soon(lambda: None)  # the caller's loop has moved past it
    assert ran == []


async def test_awaiting_a_cancelled_pending_raises_pending_cancelled_with_the_message(
    caller: Caller, blocked: threading.Event
) -> None:
    pending = caller.call_soon(answer)
    pending.cancel("not wanted")
    with anyio.fail_after(TIMEOUT), pytest.raises(PendingCancelled, match="not wanted"):
        await pending


async def test_result_of_a_cancelled_pending_raises_pending_cancelled(
    caller: Caller, blocked: threading.Event
) -> None:
    pending = caller.call_soon(answer)
    pending.cancel()
    with pytest.raises(PendingCancelled):
        pending.result()


async def test_cancel_of_a_running_async_call_cancels_the_function(caller: Caller) -> None:
    started = ThreadsafeEvent()
    unwound = ThreadsafeEvent()

    async def forever() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            unwound.set()

    pending = caller.call_soon(forever)
    with anyio.fail_after(TIMEOUT):
        await started
        assert pending.cancel()
        await unwound
        with pytest.raises(PendingCancelled):
            await pending
    assert pending.cancelled()


async def test_cancel_of_a_done_pending_returns_false(caller: Caller) -> None:
    pending = caller.call_soon(answer)
    with anyio.fail_after(TIMEOUT):
        await pending
    assert pending.cancel() is False
    assert not pending.cancelled()


async def test_cancelling_the_awaiting_task_leaves_the_call_running(
    caller: Caller, gate: ThreadsafeEvent
) -> None:
    pending = caller.call_soon(wait_for, gate)
    with anyio.move_on_after(0.01):
        await pending
    assert not pending.done()
    gate.set()
    with anyio.fail_after(TIMEOUT):
        assert await pending == "released"


# --- done callbacks ----------------------------------------------------------------------------


async def test_done_callback_receives_the_pending(caller: Caller) -> None:
    received: list[Pending[Any]] = []
    called = ThreadsafeEvent()

    def on_done(pending: Pending[Any]) -> None:
        received.append(pending)
        called.set()

    pending = caller.call_soon(answer)
    pending.add_done_callback(on_done)
    with anyio.fail_after(TIMEOUT):
        await called
    assert received == [pending]


async def test_done_callback_added_after_completion_is_called_at_once(caller: Caller) -> None:
    pending = caller.call_soon(answer)
    with anyio.fail_after(TIMEOUT):
        await pending
    received: list[tuple[Pending[Any], threading.Thread]] = []
    pending.add_done_callback(lambda p: received.append((p, threading.current_thread())))
    assert received == [(pending, threading.current_thread())]


def test_remove_done_callback_returns_the_number_removed(
    caller: Caller, gate: ThreadsafeEvent
) -> None:
    received: list[Pending[Any]] = []
    pending = caller.call_soon(wait_for, gate)
    pending.add_done_callback(received.append)
    pending.add_done_callback(received.append)
    assert pending.remove_done_callback(received.append) == 2
    assert pending.remove_done_callback(received.append) == 0


def test_a_removed_done_callback_is_not_called(caller: Caller, gate: ThreadsafeEvent) -> None:
    removed: list[Pending[Any]] = []
    kept: list[Pending[Any]] = []
    pending = caller.call_soon(wait_for, gate)
    pending.add_done_callback(removed.append)
    pending.add_done_callback(kept.append)
    pending.remove_done_callback(removed.append)
    gate.set()
    pending.wait_sync(TIMEOUT)
    assert kept == [pending]
    assert removed == []


# --- completing once ---------------------------------------------------------------------------


def outcome(pending: Pending[Any]) -> tuple[str, object]:
    """What a done Pending holds, read through its public API."""
    try:
        return "result", pending.result()
    except BaseException as exc:
        return "exception", exc


def record_completing_thread(names: list[str], _: object) -> None:
    names.append(threading.current_thread().name)


def test_a_pending_completes_once_when_two_threads_complete_it_at_once() -> None:
    # An input_reply and an interrupt racing on one input() waiter: whichever completes it
    # first decides the outcome, for good; the other is refused.
    rounds = 1000
    go = threading.Barrier(2)
    wrong: list[tuple[int, str, tuple[str, object]]] = []
    wins: list[int] = []

    for n in range(rounds):
        pending: Pending[str] = Pending()
        interrupt = KeyboardInterrupt()
        expected = {"reply": ("result", "the user's answer"), "interrupt": ("exception", interrupt)}
        winners: list[str] = []  # done callbacks run in the thread that completed the Pending
        pending.add_done_callback(functools.partial(record_completing_thread, winners))
        won: list[bool] = []

        def reply(pending: Pending[str] = pending, won: list[bool] = won) -> None:
            go.wait(TIMEOUT)
            won.append(bool(pending._set_result("the user's answer")))

        def interrupt_it(
            pending: Pending[str] = pending,
            won: list[bool] = won,
            interrupt: KeyboardInterrupt = interrupt,
        ) -> None:
            go.wait(TIMEOUT)
            won.append(bool(pending._set_exception(interrupt)))

        threads = [
            threading.Thread(target=reply, name="reply"),
            threading.Thread(target=interrupt_it, name="interrupt"),
        ]
        if n % 2:  # the thread that reaches the barrier last tends to run first: alternate
            threads.reverse()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        assert pending.done()
        assert len(winners) == 1
        if outcome(pending) != expected[winners[0]]:
            wrong.append((n, winners[0], outcome(pending)))
        wins.append(won.count(True))
    assert wrong == []  # the outcome is the winner's, not overwritten by the loser
    assert set(wins) == {1}  # exactly one of the two says it completed the Pending


def test_a_second_completion_is_refused_and_leaves_the_first_outcome() -> None:
    pending: Pending[str] = Pending()
    assert pending._set_result("answer") is True
    assert pending._set_exception(KeyboardInterrupt()) is False
    assert pending._set_result("another answer") is False
    assert pending._set_cancelled() is False
    assert pending.result() == "answer"
    assert pending.cancel() is False


def test_set_result_completes_a_free_standing_pending() -> None:
    pending: Pending[int] = Pending()
    received: list[Pending[Any]] = []
    pending.add_done_callback(received.append)
    pending.set_result(7)
    assert pending.done()
    assert pending.result() == 7
    assert received == [pending]


def test_set_exception_completes_a_free_standing_pending() -> None:
    pending: Pending[int] = Pending()
    error = LookupError("no answer")
    pending.set_exception(error)
    assert pending.exception() is error
    with pytest.raises(LookupError, match="no answer"):
        pending.result()


@pytest.mark.parametrize(
    "first", ["set_result", "set_exception", "cancel"], ids=lambda name: f"after-{name}"
)
@pytest.mark.parametrize("second", ["set_result", "set_exception"])
def test_completing_a_done_pending_raises_invalid_state_error(first: str, second: str) -> None:
    def complete(pending: Pending[str], how: str) -> None:
        if how == "set_result":
            pending.set_result(how)
        elif how == "set_exception":
            pending.set_exception(ValueError(how))
        else:
            pending.cancel()

    pending: Pending[str] = Pending()
    complete(pending, first)
    before = outcome(pending)
    with pytest.raises(InvalidStateError):
        complete(pending, second)
    assert outcome(pending) == before


def test_set_result_of_a_callers_pending_raises_runtime_error(
    caller: Caller, gate: ThreadsafeEvent
) -> None:
    pending = caller.call_soon(wait_for, gate)
    with pytest.raises(RuntimeError):
        pending.set_result("not yours")
    with pytest.raises(RuntimeError):
        pending.set_exception(ValueError("not yours"))
    gate.set()
    assert pending.wait_sync(TIMEOUT) == "released"


async def test_a_free_standing_pending_set_from_another_thread_can_be_awaited() -> None:
    pending: Pending[str] = Pending()
    waiting = ThreadsafeEvent()

    def answer_later() -> None:
        waiting.wait_sync(TIMEOUT)
        pending.set_result("from a plain thread")

    thread = threading.Thread(target=answer_later)
    thread.start()
    try:
        waiting.set()
        with anyio.fail_after(TIMEOUT):
            assert await pending == "from a plain thread"
    finally:
        thread.join(TIMEOUT)


# --- wait_sync leaves nothing behind -----------------------------------------------------------


def test_wait_sync_that_times_out_leaves_no_done_callback() -> None:
    pending: Pending[str] = Pending()
    for _ in range(50):
        with pytest.raises(TimeoutError):
            pending.wait_sync(0.001)
    assert len(pending._callbacks) == 0
    pending.set_result("done")
    assert pending.wait_sync(0.001) == "done"


def test_threadsafe_event_wait_sync_that_times_out_leaves_no_done_callback() -> None:
    event = ThreadsafeEvent()
    for _ in range(50):
        with pytest.raises(TimeoutError):
            event.wait_sync(0.001)
    assert len(event._callbacks) == 0
