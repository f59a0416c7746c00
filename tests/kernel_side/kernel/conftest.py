"""Fixtures for the kernel tests: real kernel subprocesses over ZMQ, on both backends.

- `kernel_env` (session, autouse): an isolated Jupyter/IPython environment with the `async` and
  `async-trio` kernelspecs installed into a temporary prefix on `JUPYTER_PATH`.
- `backend` (module): "asyncio" and "trio"; every test that uses a kernel runs on both.
- `kernel`: a kernel shared by the tests of one module (per backend), synchronised before each
  test so no output of an earlier test is left over.
- `fresh_kernel`: a kernel of the test's own, for tests that interrupt, kill or shut it down.
- `hold`: makes flag files that hold a cell until the test releases it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kernel_harness import (
    BACKENDS,
    Hold,
    IsolatedEnv,
    KernelSession,
    make_isolated_env,
    remove_isolated_env,
    set_current_env,
)


@pytest.fixture(scope="session", autouse=True)
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedEnv]:
    """The isolated environment every kernel of this folder runs in."""
    env = make_isolated_env(Path(tmp_path_factory.mktemp("jupyter")))
    set_current_env(env)
    try:
        yield env
    finally:
        set_current_env(None)
        remove_isolated_env(env)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The anyio backend of the kernel under test."""
    return str(request.param)


@pytest.fixture(scope="module")
def module_kernel(backend: str, kernel_env: IsolatedEnv) -> Iterator[KernelSession]:
    """One kernel per test module and backend."""
    session = KernelSession.start(backend, kernel_env)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def kernel(module_kernel: KernelSession) -> KernelSession:
    """The module's kernel, with every earlier cell finished and its output discarded."""
    assert module_kernel.manager.is_alive(), "an earlier test left the shared kernel dead"
    module_kernel.sync()
    return module_kernel


@pytest.fixture
def fresh_kernel(backend: str, kernel_env: IsolatedEnv) -> Iterator[KernelSession]:
    """A kernel for this test alone."""
    session = KernelSession.start(backend, kernel_env)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def hold(tmp_path: Path) -> Iterator[Callable[[], Hold]]:
    """Make [Hold][]s (flag files) for this test; every one is released at the end."""
    made: list[Hold] = []

    def make() -> Hold:
        latch = Hold(tmp_path / f"hold-{len(made)}")
        made.append(latch)
        return latch

    try:
        yield make
    finally:
        for latch in made:
            latch.release()
