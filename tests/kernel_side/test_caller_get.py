"""Caller.get: the caller of a running loop, named callers in new threads, children."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sniffio

from async_kernel import Caller, CallerStoppedError

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0
BACKENDS = ["asyncio", "trio"]


def run_in_plain_thread(func: Callable[[], Any]) -> Any:
    """Run `func` in a new thread with no event loop; return its result or raise its exception."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = func()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


async def backend_seen_by_an_async_function() -> str:
    await anyio.lowlevel.checkpoint()  # anyio works here, on the right backend
    return sniffio.current_async_library()


# --- the caller of the running loop ------------------------------------------------------------


async def test_get_inside_a_loop_returns_the_same_caller_each_time() -> None:
    assert Caller.get() is Caller.get()


async def test_get_inside_a_loop_names_the_caller_after_the_thread() -> None:
    caller = Caller.get()
    assert caller.name == threading.current_thread().name
    assert caller.thread is threading.current_thread()


async def test_get_inside_a_loop_matches_the_running_backend(anyio_backend: str) -> None:
    assert Caller.get().backend == anyio_backend


async def test_get_inside_a_loop_returns_a_running_caller() -> None:
    assert Caller.get().running


def test_get_outside_any_loop_in_a_plain_thread_raises_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="event loop"):
        run_in_plain_thread(Caller.get)


# --- named callers in new threads ---------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_get_with_name_starts_a_thread_of_that_name(
    backend: str, new_name: Callable[[str], str]
) -> None:
    name = new_name(backend)
    caller = Caller.get(name=name, backend=backend)
    assert caller.thread is not None
    assert caller.thread is not threading.current_thread()
    assert caller.thread.name == name
    assert caller.name == name
    assert caller.running


@pytest.mark.parametrize("backend", BACKENDS)
async def test_get_with_backend_runs_that_backend(
    backend: str, new_name: Callable[[str], str]
) -> None:
    caller = Caller.get(name=new_name(backend), backend=backend)
    assert caller.backend == backend
    with anyio.fail_after(TIMEOUT):
        assert await caller.call_soon(backend_seen_by_an_async_function) == backend


@pytest.mark.parametrize("backend", BACKENDS)
async def test_sync_function_in_a_new_caller_sees_its_backend(
    backend: str, new_name: Callable[[str], str]
) -> None:
    caller = Caller.get(name=new_name(backend), backend=backend)
    with anyio.fail_after(TIMEOUT):
        assert await caller.call_soon(sniffio.current_async_library) == backend


async def test_get_with_the_same_name_returns_the_same_caller(caller: Caller) -> None:
    assert Caller.get(name=caller.name) is caller


async def test_get_with_name_defaults_to_the_current_backend(
    anyio_backend: str, new_name: Callable[[str], str]
) -> None:
    assert Caller.get(name=new_name("default")).backend == anyio_backend


def test_get_with_name_from_a_plain_thread_defaults_to_asyncio(
    new_name: Callable[[str], str],
) -> None:
    name = new_name("plain")
    caller = run_in_plain_thread(lambda: Caller.get(name=name))
    assert caller.backend == "asyncio"


def test_get_with_name_and_thread_raises_value_error(new_name: Callable[[str], str]) -> None:
    with pytest.raises(ValueError, match="name"):
        Caller.get(name=new_name("both"), thread=threading.current_thread())


def test_get_with_an_unknown_backend_raises_value_error_naming_the_valid_ones(
    new_name: Callable[[str], str],
) -> None:
    with pytest.raises(ValueError, match="curio") as info:
        Caller.get(name=new_name("bad"), backend="curio")
    assert "'asyncio'" in str(info.value)
    assert "'trio'" in str(info.value)


async def test_get_with_thread_returns_the_caller_of_that_thread(caller: Caller) -> None:
    assert caller.thread is not None
    assert Caller.get(thread=caller.thread) is caller


async def test_get_with_the_current_thread_returns_this_loops_caller() -> None:
    assert Caller.get(thread=threading.current_thread()) is Caller.get()


def test_get_with_a_thread_that_has_no_caller_raises_runtime_error() -> None:
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join(TIMEOUT)
    with pytest.raises(RuntimeError, match="No caller"):
        Caller.get(thread=thread)


# --- children ------------------------------------------------------------------------------------


async def test_get_on_an_instance_makes_a_child(
    caller: Caller, new_name: Callable[[str], str]
) -> None:
    child = caller.get(name=new_name("child"))
    assert child in caller.children
    assert child.parent is caller


async def test_get_on_the_class_makes_no_child(
    caller: Caller, new_name: Callable[[str], str]
) -> None:
    other = Caller.get(name=new_name("other"))
    assert other.parent is None
    assert other not in caller.children


async def test_stopping_the_parent_stops_the_child(
    caller: Caller, new_name: Callable[[str], str]
) -> None:
    child = caller.get(name=new_name("child"))
    caller.stop()
    with anyio.fail_after(TIMEOUT):
        await child.stopped
    assert not child.running


async def test_the_parent_is_stopped_only_once_its_children_are(
    caller: Caller, new_name: Callable[[str], str]
) -> None:
    child = caller.get(name=new_name("child"))
    caller.stop()
    with anyio.fail_after(TIMEOUT):
        await caller.stopped
    assert child.stopped


async def test_a_stopped_parent_refuses_a_child_and_leaves_its_name_free(
    caller: Caller, new_name: Callable[[str], str]
) -> None:
    name = new_name("child")
    caller.stop()
    with anyio.fail_after(TIMEOUT):
        await caller.stopped

    with pytest.raises(CallerStoppedError):
        caller.get(name=name)

    assert name not in [c.name for c in Caller.all_callers(running_only=False)]
    assert Caller.get(name=name).running  # a new caller of that name starts, never waits


# --- construction ---------------------------------------------------------------------------------


def test_constructing_a_caller_directly_raises_type_error_naming_get(
    new_name: Callable[[str], str],
) -> None:
    name = new_name("direct")
    with pytest.raises(TypeError, match=r"Caller\.get"):
        Caller(name=name, backend="asyncio")
    assert name not in [c.name for c in Caller.all_callers(running_only=False)]
