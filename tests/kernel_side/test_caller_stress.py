"""Many threads hammering one caller at once: every call runs, every result is right."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from async_kernel import Caller

TIMEOUT = 30.0
THREADS = 8
CALLS = 10_000


def echo(value: tuple[int, int]) -> tuple[int, int]:
    return value


def test_concurrent_call_soon_from_many_threads_returns_every_result(caller: Caller) -> None:
    per_thread = CALLS // THREADS
    results: dict[int, list[tuple[int, int]]] = {}
    errors: list[BaseException] = []
    go = threading.Barrier(THREADS)

    def submit(index: int) -> None:
        try:
            go.wait(TIMEOUT)  # all threads submit at the same time
            pendings = [caller.call_soon(echo, (index, i)) for i in range(per_thread)]
            results[index] = [p.wait_sync(TIMEOUT) for p in pendings]
        except BaseException as exc:
            errors.append(exc)

    _run_in_threads(submit, THREADS)
    assert errors == []
    assert sum(len(r) for r in results.values()) == CALLS
    for index in range(THREADS):
        assert results[index] == [(index, i) for i in range(per_thread)]


# --- queue_call from many threads: nothing lost, nothing run twice, order kept per queue -------

QUEUE_THREADS = 4
QUEUE_CALLS = 1_500
"""Fresh closures per thread and round (plus a tenth as many bound-method and keyed calls).

Each fresh closure is a queue of its own, with its own task: some 9,000 a second on a small
machine, hence these modest numbers. The calls of the four threads interleave all the same,
and ids of collected closures are reused many times per round.
"""
QUEUE_ROUNDS = 3


class Tally:
    """Everything the queued calls recorded; `complete` is set by the call that brings the total.

    Only the caller's loop thread appends (queued calls all run there), so no lock is needed.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.closures: list[tuple[int, int]] = []
        self.keyed: dict[int, list[int]] = {}
        self.methods: dict[int, list[int]] = {}
        self.complete = threading.Event()

    def add(self, record: list[Any], value: Any) -> None:
        record.append(value)
        self.count += 1
        if self.count == self.total:
            self.complete.set()


class Key:
    """A callable that is equal, and hashes equal, to every other Key of the same thread."""

    def __init__(self, tally: Tally, thread: int) -> None:
        self.tally = tally
        self.thread = thread

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other.thread == self.thread

    def __hash__(self) -> int:
        return hash((Key, self.thread))

    def __call__(self, i: int) -> None:
        self.tally.add(self.tally.keyed.setdefault(self.thread, []), i)


class Sink:
    """One per thread: its bound method `record`, fetched afresh for every call, is the queue."""

    def __init__(self, tally: Tally, thread: int) -> None:
        self.tally = tally
        self.thread = thread

    def record(self, i: int) -> None:
        self.tally.add(self.tally.methods.setdefault(self.thread, []), i)


def make_closure(tally: Tally, thread: int, i: int) -> Callable[[], None]:
    def closure() -> None:
        tally.add(tally.closures, (thread, i))

    return closure


def queue_from_threads(caller: Caller) -> Tally:
    """One round: every thread queues fresh closures, fresh Keys and fresh bound methods."""
    others = QUEUE_CALLS // 10
    tally = Tally(total=QUEUE_THREADS * (QUEUE_CALLS + 2 * others))
    errors: list[BaseException] = []
    go = threading.Barrier(QUEUE_THREADS)

    def submit(thread: int) -> None:
        sink = Sink(tally, thread)
        try:
            go.wait(TIMEOUT)
            for i in range(QUEUE_CALLS):
                caller.queue_call(make_closure(tally, thread, i))
                if i < others:
                    caller.queue_call(Key(tally, thread), i)
                    caller.queue_call(sink.record, i)
        except BaseException as exc:
            errors.append(exc)

    _run_in_threads(submit, QUEUE_THREADS)
    assert errors == []
    assert tally.complete.wait(TIMEOUT), f"{tally.total - tally.count} queued calls were lost"
    # A final round trip: nothing ran twice after the total was reached.
    caller.call_soon(lambda: None).wait_sync(TIMEOUT)
    return tally


@pytest.mark.parametrize("switch_interval", [None, 1e-6], ids=["default", "switch-often"])
def test_queue_call_from_many_threads_runs_every_call_once_in_order(
    caller: Caller, switch_interval: float | None
) -> None:
    others = QUEUE_CALLS // 10
    previous = sys.getswitchinterval()
    try:
        if switch_interval is not None:
            sys.setswitchinterval(switch_interval)
        for _ in range(QUEUE_ROUNDS):
            tally = queue_from_threads(caller)
            assert tally.count == tally.total
            # Fresh closures are separate queues (or share one when an id is reused): each call
            # runs exactly once.
            expected = {(t, i) for t in range(QUEUE_THREADS) for i in range(QUEUE_CALLS)}
            assert len(tally.closures) == len(expected)
            assert set(tally.closures) == expected
            # Equal Keys share a queue, as do the bound methods of one Sink: in order.
            for thread in range(QUEUE_THREADS):
                assert tally.keyed[thread] == list(range(others))
                assert tally.methods[thread] == list(range(others))
    finally:
        sys.setswitchinterval(previous)


def _run_in_threads(target: Callable[[int], None], count: int) -> None:
    """Run `target(n)` in `count` plain threads at once and wait for all of them."""
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
