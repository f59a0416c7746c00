"""Caller.queue_call / queue_close: one queue per function, in order, one at a time."""

from __future__ import annotations

import contextvars
import gc
import logging
import threading
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest

from async_kernel import Caller, ThreadsafeEvent

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0

setting: contextvars.ContextVar[str] = contextvars.ContextVar("setting")


def queue_rows(caller: Caller, function: str) -> list[dict[str, object]]:
    return [row for row in caller.snapshot()["queues"] if row["function"].endswith(function)]


async def wait_until_queue_is_gone(caller: Caller, function: str) -> None:
    """Poll the snapshot (it is set by another thread) until the queue row has disappeared."""
    while queue_rows(caller, function):
        await anyio.lowlevel.checkpoint()


class Recorder:
    """Records queued calls, how many run at once, and sets `finished` after the last one."""

    def __init__(self, last: int) -> None:
        self.last = last
        self.seen: list[int] = []
        self.active = 0
        self.most_active = 0
        self.finished = ThreadsafeEvent()

    async def record(self, item: int) -> None:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await anyio.lowlevel.checkpoint()  # a chance for a second item to start, if it could
            self.seen.append(item)
        finally:
            self.active -= 1
        if item == self.last:
            self.finished.set()


async def test_queue_call_runs_items_in_order(caller: Caller) -> None:
    recorder = Recorder(last=99)
    for i in range(100):
        caller.queue_call(recorder.record, i)
    with anyio.fail_after(TIMEOUT):
        await recorder.finished
    assert recorder.seen == list(range(100))


async def test_queue_call_runs_one_item_at_a_time(caller: Caller) -> None:
    recorder = Recorder(last=99)
    for i in range(100):
        caller.queue_call(recorder.record, i)
    with anyio.fail_after(TIMEOUT):
        await recorder.finished
    assert recorder.most_active == 1


async def test_queue_call_runs_in_the_callers_thread(caller: Caller) -> None:
    where: list[threading.Thread] = []
    done = ThreadsafeEvent()

    def record(done: ThreadsafeEvent) -> None:
        where.append(threading.current_thread())
        done.set()

    caller.queue_call(record, done)
    with anyio.fail_after(TIMEOUT):
        await done
    assert where == [caller.thread]


async def test_queue_call_returns_none(caller: Caller) -> None:
    recorder = Recorder(last=0)
    assert caller.queue_call(recorder.record, 0) is None
    with anyio.fail_after(TIMEOUT):
        await recorder.finished


async def test_queue_call_keeps_the_context_of_the_first_call(caller: Caller) -> None:
    seen: list[str | None] = []
    done = ThreadsafeEvent()

    def item(action: str) -> None:
        if action == "set":
            setting.set("set by the first item")
        else:
            seen.append(setting.get(None))
            done.set()

    caller.queue_call(item, "set")
    token = setting.set("set by the submitter of the second item")
    try:
        caller.queue_call(item, "read")
    finally:
        setting.reset(token)
    with anyio.fail_after(TIMEOUT):
        await done
    assert seen == ["set by the first item"]


async def test_queue_call_exception_is_logged_and_the_queue_goes_on(
    caller: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    done = ThreadsafeEvent()

    def item(value: str) -> None:
        if value == "boom":
            raise ValueError("queued item failed")
        seen.append(value)
        if value == "after":
            done.set()

    with caplog.at_level(logging.ERROR, logger="async_kernel"):
        for value in ("before", "boom", "after"):
            caller.queue_call(item, value)
        with anyio.fail_after(TIMEOUT):
            await done
    assert seen == ["before", "after"]
    failures = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ValueError]
    assert len(failures) == 1
    assert failures[0].levelno == logging.ERROR


async def test_queue_close_cancels_the_running_item_and_drops_the_rest(caller: Caller) -> None:
    ran: list[int] = []
    started = ThreadsafeEvent()
    unwound = ThreadsafeEvent()

    async def item(i: int) -> None:
        ran.append(i)
        if i == 0:
            started.set()
            try:
                await anyio.sleep_forever()
            finally:
                unwound.set()

    for i in range(5):
        caller.queue_call(item, i)
    with anyio.fail_after(TIMEOUT):
        await started
        caller.queue_close(item)
        await unwound
        await wait_until_queue_is_gone(caller, "item")
        await caller.call_soon(lambda: None)  # one more turn of the caller's loop
    assert ran == [0]


async def test_queue_call_after_queue_close_starts_a_new_queue(caller: Caller) -> None:
    recorder = Recorder(last=1)
    caller.queue_call(recorder.record, 0)
    caller.queue_close(recorder.record)
    with anyio.fail_after(TIMEOUT):
        await wait_until_queue_is_gone(caller, "Recorder.record")
        caller.queue_call(recorder.record, 1)
        await recorder.finished
    assert recorder.seen[-1] == 1


async def test_queue_ends_when_the_bound_methods_owner_is_collected(caller: Caller) -> None:
    recorder = Recorder(last=0)
    finished = recorder.finished
    caller.queue_call(recorder.record, 0)
    with anyio.fail_after(TIMEOUT):
        await finished
    assert len(queue_rows(caller, "Recorder.record")) == 1

    del recorder
    gc.collect()
    with anyio.fail_after(TIMEOUT):
        await wait_until_queue_is_gone(caller, "Recorder.record")


class Key:
    """A callable equal (and hashing equal) to every Key of the same name: a value-hashed callable."""

    def __init__(self, name: str, seen: list[str], done: ThreadsafeEvent | None = None) -> None:
        self.name = name
        self.seen = seen
        self.done = done

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other.name == self.name

    def __hash__(self) -> int:
        return hash((Key, self.name))

    async def __call__(self, value: str) -> None:
        await anyio.lowlevel.checkpoint()  # other work, a queue's end say, may run meanwhile
        self.seen.append(value)
        if self.done is not None:
            self.done.set()


async def test_queue_call_to_a_queue_whose_function_was_just_collected_still_runs(
    caller: Caller, blocked: threading.Event
) -> None:
    # Two equal Keys share a queue. The first is collected while the loop is blocked; the call
    # queued behind it, with the second Key, must not be dropped along with the first.
    seen: list[str] = []
    ran = ThreadsafeEvent()
    blocked.set()  # let the fixture's blocking call end: block again below, on purpose
    first = Key("k", seen, ran)
    caller.queue_call(first, "first")
    with anyio.fail_after(TIMEOUT):
        await ran
    started = threading.Event()
    release = threading.Event()

    def block() -> None:
        started.set()
        release.wait(TIMEOUT)

    caller.call_soon(block)
    assert started.wait(TIMEOUT)
    try:
        del first
        gc.collect()  # the queue's function is gone; its loop cannot react yet
        caller.queue_call(Key("k", seen), "second")
    finally:
        release.set()
    done = ThreadsafeEvent()
    caller.queue_call(Key("k", seen, done), "third")
    with anyio.fail_after(TIMEOUT):
        await done
    assert seen == ["first", "second", "third"]


async def test_queue_call_with_fresh_equal_callables_runs_every_call_in_order(
    caller: Caller,
) -> None:
    seen: list[str] = []
    done = ThreadsafeEvent()
    for i in range(1000):
        caller.queue_call(Key("k", seen, done if i == 999 else None), str(i))
    with anyio.fail_after(TIMEOUT):
        await done
    assert seen == [str(i) for i in range(1000)]


async def test_queue_call_with_fresh_closures_runs_every_call_once(caller: Caller) -> None:
    seen: list[int] = []
    done = ThreadsafeEvent()
    total = 2000

    def make(i: int) -> Callable[[], None]:
        def closure() -> None:
            seen.append(i)
            if len(seen) == total:
                done.set()

        return closure

    for i in range(total):
        caller.queue_call(make(i))
    with anyio.fail_after(TIMEOUT):
        await done
    await caller.call_soon(lambda: None)  # nothing runs twice after the last one
    assert sorted(seen) == list(range(total))


async def test_queue_call_after_queue_close_waits_for_the_cancelled_call_to_unwind(
    caller: Caller,
) -> None:
    events: list[str] = []
    started = ThreadsafeEvent()
    unwinding = ThreadsafeEvent()
    finish_unwinding = ThreadsafeEvent()
    second_ran = ThreadsafeEvent()

    async def item(i: int) -> None:
        events.append(f"{i} started")
        if i == 0:
            started.set()
            try:
                await anyio.sleep_forever()
            finally:
                unwinding.set()
                with anyio.CancelScope(shield=True):
                    await finish_unwinding
                events.append("0 unwound")
        else:
            second_ran.set()

    caller.queue_call(item, 0)
    with anyio.fail_after(TIMEOUT):
        await started
        caller.queue_close(item)
        caller.queue_call(item, 1)  # a new queue: it must wait until the old call has unwound
        await unwinding
        for _ in range(3):  # turns of the caller's loop in which the new queue could start
            await caller.call_soon(anyio.lowlevel.checkpoint)
        finish_unwinding.set()
        await second_ran
    assert events == ["0 started", "0 unwound", "1 started"]


async def test_queue_call_from_another_thread_after_queue_close_is_not_dropped(
    caller: Caller, blocked: threading.Event
) -> None:
    # queue_close drops what waits at the time of the call; a call queued after it starts a
    # new queue, even while the caller's loop has not yet seen the close.
    seen: list[str] = []
    done = ThreadsafeEvent()

    def item(value: str) -> None:
        seen.append(value)
        if value == "after":
            done.set()

    caller.queue_call(item, "dropped")
    caller.queue_close(item)
    caller.queue_call(item, "after")
    blocked.set()
    with anyio.fail_after(TIMEOUT):
        await done
    assert seen == ["after"]


class QueuesOnCollection:
    """An argument whose finalizer queues a call: dropping it must not deadlock queue_close."""

    def __init__(self, caller: Caller, seen: list[str], done: ThreadsafeEvent) -> None:
        self.caller = caller
        self.seen = seen
        self.done = done

    def __del__(self) -> None:
        self.caller.queue_call(self.seen.append, "queued by a finalizer")
        self.caller.queue_call(self.done.set)


async def test_queue_close_frees_dropped_calls_outside_its_lock(
    caller: Caller, blocked: threading.Event
) -> None:
    seen: list[str] = []
    done = ThreadsafeEvent()

    def item(value: object) -> None:
        seen.append(repr(value))

    caller.queue_call(item, QueuesOnCollection(caller, seen, done))  # waits: the loop is blocked
    closer = threading.Thread(target=caller.queue_close, args=(item,))
    closer.start()
    closer.join(TIMEOUT)
    assert not closer.is_alive(), "queue_close deadlocked"
    blocked.set()
    with anyio.fail_after(TIMEOUT):
        await done
    assert seen == ["queued by a finalizer"]
