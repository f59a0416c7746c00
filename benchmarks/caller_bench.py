"""Caller against the standard tools, side by side in one process.

Measures calls per second for cross-thread scheduling (`Caller.call_soon`), worker threads
(`Caller.to_thread`) and per-function queues (`Caller.queue_call`), each next to what asyncio,
anyio and trio offer for the same job, and prints medians over several rounds with the ratio
ours/baseline. In every round the rows that do the same job run back to back, and each ratio is
taken within a round, so slow phases of a noisy machine hit both sides of a comparison alike.

    python benchmarks/caller_bench.py            # default: 7 rounds, well under 2 minutes
    python benchmarks/caller_bench.py --quick    # fewer calls and rounds, under 20 seconds
    python benchmarks/caller_bench.py --json results.json   # also write the figures as JSON

See benchmarks/README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import queue
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import anyio
import anyio.to_thread
import trio

from async_kernel import Caller

TITLE = "async-kernel Caller benchmark"
HEADER = f"{'benchmark':<62} {'calls/s':>11} {'spread':>7} {'ratio':>7}"

# Calls per measurement in the default mode; --quick divides them by QUICK_DIVISOR.
SERIAL_CALLS = 1500
BATCH_SIZE = 1000
TO_THREAD_CALLS = 1000
QUEUE_ITEMS = 20000
QUICK_DIVISOR = 8


# --- the work being scheduled: as little as possible, so the machinery is what is measured ---


def noop() -> None:
    """A sync function that does nothing."""


async def anoop() -> None:
    """An async function that does nothing (and does not yield)."""


def queue_item(index: int, last: int, done: threading.Event) -> None:
    """A queued call; the last one signals the producer."""
    if index == last:
        done.set()


async def aqueue_item(index: int, last: int, done: threading.Event) -> None:
    """The async variant of `queue_item`."""
    if index == last:
        done.set()


# --- results ----------------------------------------------------------------------------------


@dataclass
class Row:
    """One benchmark: `run(n)` performs `n` calls and returns the seconds they took."""

    label: str
    run: Callable[[int], Awaitable[float]]
    calls: int
    baseline: bool = False
    key: str = ""
    """Names the row for TARGETS."""
    rates: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def spread(self) -> float:
        """Half the min-max range, relative to the median."""
        return (max(self.rates) - min(self.rates)) / 2 / self.median


@dataclass
class Group:
    """Rows that do the same job; ratios are against the group's baseline row."""

    key: str
    title: str
    rows: list[Row]

    @property
    def baseline(self) -> Row:
        return next(row for row in self.rows if row.baseline)

    def ratio(self, row: Row) -> float:
        """Median over rounds of `row`'s rate / the baseline's rate *in the same round*.

        Pairing by round cancels most of the drift of a noisy machine: both rates of a pair were
        measured seconds apart, under the same load.
        """
        pairs = zip(row.rates, self.baseline.rates, strict=True)
        return statistics.median(ours / base for ours, base in pairs)


@dataclass(frozen=True)
class Target:
    """A goal from the issue: `group`/`ours` at least `minimum` times the group's baseline."""

    label: str
    group: str
    ours: str
    minimum: float


TARGETS = [
    Target(
        "call_soon one at a time (async fn) vs run_coroutine_threadsafe", "serial", "async", 1.3
    ),
    Target("call_soon one at a time (sync fn) vs run_coroutine_threadsafe", "serial", "sync", 1.3),
    Target("to_thread vs asyncio.to_thread", "to_thread", "caller", 1.0),
    Target(
        "batched call_soon (async fn) vs run_coroutine_threadsafe batched", "batch", "async", 3.0
    ),
    Target("batched call_soon (sync fn) vs run_coroutine_threadsafe batched", "batch", "sync", 3.0),
]


async def measure(groups: list[Group], rounds: int) -> None:
    """Warm every row up once, then run `rounds` rounds of every group's rows back to back.

    The rows of a group run one right after the other, in reversed order every other round, so
    neither going first nor a slow phase of the machine favours one of them.
    """
    for group in groups:
        for row in group.rows:
            await row.run(max(row.calls // 10, 1))
    for number in range(rounds):
        for group in groups:
            rows = group.rows if number % 2 == 0 else group.rows[::-1]
            for row in rows:
                gc.collect()
                elapsed = await row.run(row.calls)
                row.rates.append(row.calls / elapsed)


async def in_plain_thread(func: Callable[[int], float], n: int) -> float:
    """Run the sync benchmark `func(n)` in a thread without an event loop; return its time."""
    return await anyio.to_thread.run_sync(func, n)


# --- asyncio side -----------------------------------------------------------------------------


class AsyncioLoopThread:
    """A plain asyncio loop in its own thread: the target of the asyncio baselines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.tasks: list[asyncio.Task[None]] = []
        """Tasks running in the loop (a strong reference keeps a task alive)."""
        self.thread = threading.Thread(target=self.loop.run_forever, name="baseline-asyncio")
        self.thread.start()

    def close(self) -> None:
        """Cancel the loop's tasks, stop the loop and join its thread."""

        async def cancel_tasks() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_tasks(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def asyncio_groups(
    target: Caller, main: Caller, queue_caller: Caller, other: AsyncioLoopThread, scale: int
) -> list[Group]:
    """Sections 1-4: from an asyncio main loop, against asyncio and anyio."""
    loop = other.loop
    serial = SERIAL_CALLS // scale
    batch = BATCH_SIZE // scale
    to_thread = TO_THREAD_CALLS // scale
    items = QUEUE_ITEMS // scale

    async def call_soon_serial(func: Callable[[], Any], n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await target.call_soon(func)
        return time.perf_counter() - start

    async def rcts_serial(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(anoop(), loop))
        return time.perf_counter() - start

    async def call_soon_gather(func: Callable[[], Any], n: int) -> float:
        start = time.perf_counter()
        await asyncio.gather(*[target.call_soon(func) for _ in range(n)])
        return time.perf_counter() - start

    async def call_soon_wait(n: int) -> float:
        start = time.perf_counter()
        await target.wait([target.call_soon(noop) for _ in range(n)])
        return time.perf_counter() - start

    async def rcts_gather(n: int) -> float:
        start = time.perf_counter()
        futures = [asyncio.run_coroutine_threadsafe(anoop(), loop) for _ in range(n)]
        await asyncio.gather(*[asyncio.wrap_future(f) for f in futures])
        return time.perf_counter() - start

    async def caller_to_thread(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await main.to_thread(noop)
        return time.perf_counter() - start

    async def asyncio_to_thread(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await asyncio.to_thread(noop)
        return time.perf_counter() - start

    async def anyio_to_thread(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await anyio.to_thread.run_sync(noop)
        return time.perf_counter() - start

    def queue_call_producer(func: Callable[..., Any], n: int) -> float:
        done = threading.Event()
        last = n - 1
        start = time.perf_counter()
        for index in range(n):
            queue_caller.queue_call(func, index, last, done)
        done.wait()
        return time.perf_counter() - start

    # The queue binds to the loop that first uses it: the baseline loop, where its consumer runs.
    baseline_queue: asyncio.Queue[tuple[int, int, threading.Event]] = asyncio.Queue()

    async def consume() -> None:
        while True:
            index, last, done = await baseline_queue.get()
            if index == last:
                done.set()

    async def start_consumer() -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(consume())

    other.tasks.append(asyncio.run_coroutine_threadsafe(start_consumer(), loop).result())

    def asyncio_queue_producer(n: int) -> float:
        done = threading.Event()
        last = n - 1
        put = baseline_queue.put_nowait
        start = time.perf_counter()
        for index in range(n):
            loop.call_soon_threadsafe(put, (index, last, done))
        done.wait()
        return time.perf_counter() - start

    return [
        Group(
            "serial",
            "1. cross-thread call, one at a time (asyncio main -> asyncio loop in another thread)",
            [
                Row(
                    "Caller.call_soon(sync fn)",
                    lambda n: call_soon_serial(noop, n),
                    serial,
                    key="sync",
                ),
                Row(
                    "Caller.call_soon(async fn)",
                    lambda n: call_soon_serial(anoop, n),
                    serial,
                    key="async",
                ),
                Row("run_coroutine_threadsafe + wrap_future", rcts_serial, serial, baseline=True),
            ],
        ),
        Group(
            "batch",
            f"2. cross-thread calls in a batch of {batch}: submit all, then await all",
            [
                Row(
                    "Caller.call_soon(sync fn) x N, asyncio.gather",
                    lambda n: call_soon_gather(noop, n),
                    batch,
                    key="sync",
                ),
                Row(
                    "Caller.call_soon(async fn) x N, asyncio.gather",
                    lambda n: call_soon_gather(anoop, n),
                    batch,
                    key="async",
                ),
                Row("Caller.call_soon(sync fn) x N, Caller.wait", call_soon_wait, batch),
                Row(
                    "run_coroutine_threadsafe x N, asyncio.gather",
                    rcts_gather,
                    batch,
                    baseline=True,
                ),
            ],
        ),
        Group(
            "to_thread",
            "3. to_thread, one at a time (sync fn, asyncio)",
            [
                Row("Caller.to_thread", caller_to_thread, to_thread, key="caller"),
                Row("anyio.to_thread.run_sync", anyio_to_thread, to_thread),
                Row("asyncio.to_thread", asyncio_to_thread, to_thread, baseline=True),
            ],
        ),
        Group(
            "queue",
            f"4. queue throughput: {items} items from a plain thread until the last has run",
            [
                Row(
                    "Caller.queue_call(sync fn)",
                    lambda n: in_plain_thread(lambda k: queue_call_producer(queue_item, k), n),
                    items,
                ),
                Row(
                    "Caller.queue_call(async fn)",
                    lambda n: in_plain_thread(lambda k: queue_call_producer(aqueue_item, k), n),
                    items,
                ),
                Row(
                    "loop.call_soon_threadsafe(q.put_nowait) + task",
                    lambda n: in_plain_thread(asyncio_queue_producer, n),
                    items,
                    baseline=True,
                ),
            ],
        ),
    ]


async def run_asyncio(rounds: int, scale: int) -> list[Group]:
    """Sections 1-4 under asyncio.run."""
    main = Caller.get()
    target = Caller.get(name="bench-asyncio", backend="asyncio")
    queue_caller = Caller.get(name="bench-queue", backend="asyncio")
    other = AsyncioLoopThread()
    try:
        groups = asyncio_groups(target, main, queue_caller, other, scale)
        await measure(groups, rounds)
    finally:
        other.close()
        for caller in (target, queue_caller):
            caller.stop()
            await caller.stopped
    return groups


# --- trio side --------------------------------------------------------------------------------


class TrioLoopThread:
    """A plain trio loop in its own thread: the target of the trio.from_thread baselines."""

    def __init__(self) -> None:
        handoff: queue.Queue[tuple[trio.lowlevel.TrioToken, trio.Event]] = queue.Queue()

        async def serve() -> None:
            stop = trio.Event()
            handoff.put((trio.lowlevel.current_trio_token(), stop))
            await stop.wait()

        self.thread = threading.Thread(target=trio.run, args=(serve,), name="baseline-trio")
        self.thread.start()
        self.token, self._stop = handoff.get()

    def close(self) -> None:
        self.token.run_sync_soon(self._stop.set)
        self.thread.join()


def trio_groups(target: Caller, main: Caller, other: TrioLoopThread, scale: int) -> list[Group]:
    """Section 5: from a trio main loop, against trio and anyio."""
    serial = SERIAL_CALLS // scale
    to_thread = TO_THREAD_CALLS // scale
    token = other.token

    async def call_soon_serial(func: Callable[[], Any], n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await target.call_soon(func)
        return time.perf_counter() - start

    def call_soon_wait_sync(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            target.call_soon(noop).wait_sync()
        return time.perf_counter() - start

    def from_thread_run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            trio.from_thread.run(anoop, trio_token=token)
        return time.perf_counter() - start

    def from_thread_run_sync(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            trio.from_thread.run_sync(noop, trio_token=token)
        return time.perf_counter() - start

    async def caller_to_thread(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await main.to_thread(noop)
        return time.perf_counter() - start

    async def trio_to_thread(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await trio.to_thread.run_sync(noop)
        return time.perf_counter() - start

    async def anyio_to_thread(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await anyio.to_thread.run_sync(noop)
        return time.perf_counter() - start

    return [
        Group(
            "trio_serial",
            "5a. trio: cross-thread call, one at a time (into a trio loop in another thread)",
            [
                Row(
                    "trio main: await Caller.call_soon(sync fn)",
                    lambda n: call_soon_serial(noop, n),
                    serial,
                ),
                Row(
                    "trio main: await Caller.call_soon(async fn)",
                    lambda n: call_soon_serial(anoop, n),
                    serial,
                ),
                Row(
                    "plain thread: Caller.call_soon(sync fn).wait_sync()",
                    lambda n: in_plain_thread(call_soon_wait_sync, n),
                    serial,
                ),
                Row(
                    "plain thread: trio.from_thread.run_sync(sync fn)",
                    lambda n: in_plain_thread(from_thread_run_sync, n),
                    serial,
                ),
                Row(
                    "plain thread: trio.from_thread.run(async fn)",
                    lambda n: in_plain_thread(from_thread_run, n),
                    serial,
                    baseline=True,
                ),
            ],
        ),
        Group(
            "trio_to_thread",
            "5b. trio: to_thread, one at a time (sync fn)",
            [
                Row("Caller.to_thread", caller_to_thread, to_thread),
                Row("anyio.to_thread.run_sync", anyio_to_thread, to_thread),
                Row("trio.to_thread.run_sync", trio_to_thread, to_thread, baseline=True),
            ],
        ),
    ]


async def run_trio(rounds: int, scale: int) -> list[Group]:
    """Section 5 under trio.run."""
    main = Caller.get()
    target = Caller.get(name="bench-trio", backend="trio")
    other = TrioLoopThread()
    try:
        groups = trio_groups(target, main, other, scale)
        await measure(groups, rounds)
    finally:
        other.close()
        target.stop()
        await target.stopped
    return groups


# --- report -----------------------------------------------------------------------------------


def render(groups: list[Group], rounds: int, mode: str, seconds: float) -> str:
    """The table, then the targets."""
    lines = [
        f"{TITLE} ({mode} mode, {rounds} round(s))",
        "calls/s: median over rounds; spread: half the min-max range, relative to the median;",
        "ratio: median over rounds of (row / baseline of its group, measured in the same round)",
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs; anyio {version('anyio')}, "
        f"trio {trio.__version__}; took {seconds:.1f} s",
        "",
        HEADER,
        "-" * len(HEADER),
    ]
    for group in groups:
        lines.append(group.title)
        for row in group.rows:
            label = ("  baseline: " if row.baseline else "  ") + row.label
            lines.append(
                f"{label:<62} {row.median:>11,.0f} {row.spread:>6.0%} {group.ratio(row):>6.2f}x"
            )
    by_key = {group.key: group for group in groups}
    lines += ["", f"{'target (from the issue)':<70} {'ratio':>7} {'goal':>7}  result"]
    for target in TARGETS:
        group = by_key[target.group]
        row = next(r for r in group.rows if r.key == target.ours)
        ratio = math.floor(group.ratio(row) * 100) / 100  # never shows 2.996 as a met 3.00
        verdict = "met" if ratio >= target.minimum else "NOT met"
        lines.append(f"{target.label:<70} {ratio:>6.2f}x {target.minimum:>5.1f}x   {verdict}")
    return "\n".join(lines)


def as_json(groups: list[Group], rounds: int, mode: str) -> dict[str, Any]:
    """The results as plain data."""
    return {
        "mode": mode,
        "rounds": rounds,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "groups": [
            {
                "key": group.key,
                "title": group.title,
                "rows": [
                    {
                        "label": row.label,
                        "baseline": row.baseline,
                        "calls": row.calls,
                        "rates": row.rates,
                        "median": row.median,
                        "spread": row.spread,
                        "ratio": group.ratio(row),
                    }
                    for row in group.rows
                ],
            }
            for group in groups
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run both backends' sections, print the table (and JSON)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds (< 20 s)")
    parser.add_argument(
        "--rounds", type=int, help="rounds per benchmark (default 7; 3 with --quick)"
    )
    parser.add_argument(
        "--json", metavar="PATH", help="also write the results as JSON ('-': stdout)"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (3 if args.quick else 7)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    scale = QUICK_DIVISOR if args.quick else 1
    mode = "quick" if args.quick else "default"

    start = time.perf_counter()
    groups = asyncio.run(run_asyncio(rounds, scale))
    groups += trio.run(run_trio, rounds, scale)
    seconds = time.perf_counter() - start

    print(render(groups, rounds, mode, seconds))
    if args.json:
        data = json.dumps(as_json(groups, rounds, mode), indent=2)
        if args.json == "-":
            print(data)
        else:
            with open(args.json, "w", encoding="utf-8") as file:
                file.write(data + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
