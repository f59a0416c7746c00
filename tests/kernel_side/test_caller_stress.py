"""Many threads hammering one caller at once: every call runs, every result is right."""

from __future__ import annotations

import threading

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

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert sum(len(r) for r in results.values()) == CALLS
    for index in range(THREADS):
        assert results[index] == [(index, i) for i in range(per_thread)]
