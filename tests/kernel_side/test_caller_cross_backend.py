"""An asyncio caller with a trio child, and the reverse: results cross between them."""

from __future__ import annotations

import threading
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest
import sniffio

from async_kernel import Caller

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0


@pytest.fixture(
    params=[("asyncio", "trio"), ("trio", "asyncio")], ids=["asyncio-trio", "trio-asyncio"]
)
def pair(request: pytest.FixtureRequest, new_name: Callable[[str], str]) -> tuple[Caller, Caller]:
    """A parent caller of one backend with a child of the other."""
    parent_backend, child_backend = request.param
    parent = Caller.get(name=new_name("parent"), backend=parent_backend)
    child = parent.get(name=new_name("child"), backend=child_backend)
    assert (parent.backend, child.backend) == (parent_backend, child_backend)
    return parent, child


async def where_am_i() -> tuple[str, str]:
    """The backend and the thread this async function runs in."""
    await anyio.lowlevel.checkpoint()
    return sniffio.current_async_library(), threading.current_thread().name


async def ask(target: Caller) -> tuple[str, str]:
    """Await, in the current caller, a call running in `target`."""
    return await target.call_soon(where_am_i)


async def test_child_result_awaited_from_the_test_loop(pair: tuple[Caller, Caller]) -> None:
    _, child = pair
    with anyio.fail_after(TIMEOUT):
        assert await child.call_soon(where_am_i) == (child.backend, child.name)


async def test_parent_result_awaited_from_the_test_loop(pair: tuple[Caller, Caller]) -> None:
    parent, _ = pair
    with anyio.fail_after(TIMEOUT):
        assert await parent.call_soon(where_am_i) == (parent.backend, parent.name)


async def test_child_result_awaited_from_the_parent(pair: tuple[Caller, Caller]) -> None:
    parent, child = pair
    with anyio.fail_after(TIMEOUT):
        assert await parent.call_soon(ask, child) == (child.backend, child.name)


async def test_parent_result_awaited_from_the_child(pair: tuple[Caller, Caller]) -> None:
    parent, child = pair
    with anyio.fail_after(TIMEOUT):
        assert await child.call_soon(ask, parent) == (parent.backend, parent.name)


def test_results_of_both_waited_for_from_a_plain_thread(pair: tuple[Caller, Caller]) -> None:
    parent, child = pair
    results: list[tuple[str, str]] = []
    thread = threading.Thread(
        target=lambda: results.extend(
            [
                parent.call_soon(ask, child).wait_sync(TIMEOUT),
                child.call_soon(ask, parent).wait_sync(TIMEOUT),
            ]
        )
    )
    thread.start()
    thread.join(TIMEOUT)
    assert results == [(child.backend, child.name), (parent.backend, parent.name)]
