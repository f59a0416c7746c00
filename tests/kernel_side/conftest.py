"""Shared fixtures for the kernel-side tests: both anyio backends, fresh callers, no leaks."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_harness import Cli, make_cli

from async_kernel import Caller

STOP_TIMEOUT = 10.0
"""Seconds a leftover caller gets to stop (and its thread to end) after a test."""

_names = itertools.count(1)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async test on asyncio and on trio (anyio's pytest plugin)."""
    return request.param


@pytest.fixture(autouse=True)
def _stop_callers_the_test_created() -> Iterator[None]:
    """Stop (forcibly) every caller a test left behind and wait for it, so no thread leaks."""
    before = set(Caller.all_callers(running_only=False))
    yield
    extras = [c for c in Caller.all_callers(running_only=False) if c not in before]
    for caller in extras:
        caller.stop(force=True)
    for caller in extras:
        caller.stopped.wait_sync(STOP_TIMEOUT)
        thread = caller.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT)
            assert not thread.is_alive(), f"thread of {caller!r} is still alive"


@pytest.fixture
def new_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Make caller names unique to this test: ``new_name("worker")``."""
    test = request.node.name

    def make(label: str = "caller") -> str:
        return f"{test}-{label}-{next(_names)}"

    return make


@pytest.fixture
def caller(anyio_backend: str, new_name: Callable[[str], str]) -> Caller:
    """A fresh caller in its own thread, running the test's backend."""
    return Caller.get(name=new_name("caller"), backend=anyio_backend)


@pytest.fixture
def blocked(caller: Caller) -> Iterator[threading.Event]:
    """Block `caller`'s loop thread in a sync call until the yielded event is set (or teardown)."""
    started = threading.Event()
    release = threading.Event()

    def block() -> None:
        started.set()
        release.wait(STOP_TIMEOUT)

    caller.call_soon(block)
    assert started.wait(STOP_TIMEOUT)
    yield release
    release.set()


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    """An install prefix of the test's own (``async-kernel install --prefix``)."""
    return tmp_path / "prefix"


@pytest.fixture
def kernels_dir(prefix: Path) -> Path:
    """Where kernelspecs installed under `prefix` go."""
    return prefix / "share" / "jupyter" / "kernels"


@pytest.fixture
def cli(tmp_path: Path, prefix: Path) -> Cli:
    """Run ``python -m async_kernel ...`` with the test's own Jupyter dirs."""
    return make_cli(tmp_path, prefix)
