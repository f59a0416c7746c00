"""Caller.queue_call / queue_close: one queue per function, in order, one at a time."""

from __future__ import annotations

import contextvars
import gc
import logging
import threading

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
