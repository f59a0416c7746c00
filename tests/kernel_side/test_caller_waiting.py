"""Caller.as_completed and Caller.wait over several Pendings."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import anyio.lowlevel
import pytest

from async_kernel import Caller, Pending, ThreadsafeEvent

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0


async def released(gate: ThreadsafeEvent, value: int) -> int:
    await gate
    if value < 0:
        raise ValueError(f"failed with {value}")
    return value


@pytest.fixture
def gates() -> Iterator[list[ThreadsafeEvent]]:
    """Three gates, all opened at teardown so nothing waits forever."""
    events = [ThreadsafeEvent() for _ in range(3)]
    yield events
    for event in events:
        event.set()


def start(caller: Caller, gates: list[ThreadsafeEvent], values: list[int]) -> list[Pending[int]]:
    return [caller.call_soon(released, gate, v) for gate, v in zip(gates, values, strict=True)]


async def test_as_completed_yields_in_completion_order(
    caller: Caller, gates: list[ThreadsafeEvent]
) -> None:
    pendings = start(caller, gates, [0, 1, 2])
    order = [2, 0, 1]
    seen: list[int] = []
    gates[order[0]].set()
    with anyio.fail_after(TIMEOUT):
        async for pending in caller.as_completed(pendings):
            seen.append(pending.result())
            if len(seen) < len(order):
                gates[order[len(seen)]].set()
    assert seen == order


async def test_as_completed_raises_timeout_error_when_not_all_done(
    caller: Caller, gates: list[ThreadsafeEvent]
) -> None:
    pendings = start(caller, gates, [0, 1, 2])
    gates[0].set()
    with anyio.fail_after(TIMEOUT):
        await pendings[0]
    seen: list[int] = []

    async def collect() -> None:
        async for pending in caller.as_completed(pendings, timeout=0.05):
            seen.append(pending.result())

    with pytest.raises(TimeoutError):
        await collect()
    assert seen == [0]


async def test_wait_all_completed_returns_when_every_pending_is_done(
    caller: Caller, gates: list[ThreadsafeEvent]
) -> None:
    pendings = start(caller, gates, [0, 1, 2])
    for gate in gates:
        gate.set()
    with anyio.fail_after(TIMEOUT):
        done, not_done = await caller.wait(pendings, return_when="ALL_COMPLETED")
    assert done == set(pendings)
    assert not_done == set()


async def test_wait_first_completed_returns_after_the_first(
    caller: Caller, gates: list[ThreadsafeEvent]
) -> None:
    pendings = start(caller, gates, [0, 1, 2])
    gates[1].set()
    with anyio.fail_after(TIMEOUT):
        done, not_done = await caller.wait(pendings, return_when="FIRST_COMPLETED")
    assert done == {pendings[1]}
    assert not_done == {pendings[0], pendings[2]}


async def test_wait_first_exception_returns_after_the_first_failure(
    caller: Caller, gates: list[ThreadsafeEvent]
) -> None:
    pendings = start(caller, gates, [0, -1, 2])
    gates[0].set()
    with anyio.fail_after(TIMEOUT):
        await pendings[0]  # a success does not end the wait ...
        gates[1].set()  # ... a failure does; the third stays blocked
        done, not_done = await caller.wait(pendings, return_when="FIRST_EXCEPTION")
    assert done == {pendings[0], pendings[1]}
    assert not_done == {pendings[2]}
    assert isinstance(pendings[1].exception(), ValueError)


async def test_wait_first_exception_without_failures_waits_for_all(
    caller: Caller, gates: list[ThreadsafeEvent]
) -> None:
    pendings = start(caller, gates, [0, 1, 2])
    for gate in gates:
        gate.set()
    with anyio.fail_after(TIMEOUT):
        done, not_done = await caller.wait(pendings, return_when="FIRST_EXCEPTION")
    assert done == set(pendings)
    assert not_done == set()


async def test_wait_with_timeout_returns_the_sets_as_they_stand(
    caller: Caller, gates: list[ThreadsafeEvent]
) -> None:
    pendings = start(caller, gates, [0, 1, 2])
    gates[0].set()
    with anyio.fail_after(TIMEOUT):
        await pendings[0]
    with anyio.fail_after(TIMEOUT):
        done, not_done = await caller.wait(pendings, timeout=0.05)
    assert done == {pendings[0]}
    assert not_done == {pendings[1], pendings[2]}
    assert not any(p.cancelled() for p in pendings)


async def test_wait_rejects_an_unknown_return_when(caller: Caller) -> None:
    with pytest.raises(ValueError, match="return_when"):
        await caller.wait([], return_when="SOMETIMES")  # type: ignore[arg-type]


async def test_wait_first_completed_returns_at_once_when_one_is_already_done(
    caller: Caller, gates: list[ThreadsafeEvent]
) -> None:
    pendings = start(caller, gates, [0, 1, 2])
    gates[0].set()
    with anyio.fail_after(TIMEOUT):
        await pendings[0]
        done, not_done = await caller.wait(pendings, return_when="FIRST_COMPLETED")
    assert done == {pendings[0]}
    assert not_done == {pendings[1], pendings[2]}


async def test_breaking_out_of_as_completed_early_is_safe(
    caller: Caller, gates: list[ThreadsafeEvent]
) -> None:
    pendings = start(caller, gates, [0, 1, 2])
    gates[1].set()
    with anyio.fail_after(TIMEOUT):
        async for pending in caller.as_completed(pendings, timeout=TIMEOUT):
            assert pending is pendings[1]
            break
        await anyio.lowlevel.checkpoint()  # the test task goes on, under its own cancel scopes
    gates[0].set()
    with anyio.fail_after(TIMEOUT):
        assert await pendings[0] == 0
