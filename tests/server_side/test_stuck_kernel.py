"""A kernel that lives but does not answer (SIGSTOP'd) costs one timeout, and only its own row."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

TIMEOUT = 1.0


@pytest.fixture
def snapshot_timeout() -> float:
    return TIMEOUT


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """SIGSTOP the process for the block, SIGCONT it afterwards whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_stopped_kernel_gives_504_after_the_configured_timeout(
    kernels: Any, api: Any
) -> None:
    kernel_id = await kernels.start("async")

    with stopped(kernels.pid(kernel_id)):
        started = time.monotonic()
        status, body = await api.snapshot(kernel_id)
        elapsed = time.monotonic() - started

    assert status == 504, body
    assert body["reason"] == "NoAnswerInTime"
    assert TIMEOUT <= elapsed < TIMEOUT + 2.0


async def test_list_answers_with_an_error_row_for_a_stopped_kernel(kernels: Any, api: Any) -> None:
    stuck_id = await kernels.start("async")
    healthy_id = await kernels.start("async-trio")

    with stopped(kernels.pid(stuck_id)):
        started = time.monotonic()
        rows = await api.rows()
        elapsed = time.monotonic() - started

    assert elapsed < TIMEOUT + 2.0
    assert rows[stuck_id]["async_kernel"] is True
    assert rows[stuck_id]["error"].startswith("NoAnswerInTime")
    assert "backend" not in rows[stuck_id]
    assert rows[healthy_id]["backend"] == "trio"
    assert "error" not in rows[healthy_id]


async def test_kernel_answers_snapshots_again_once_continued(kernels: Any, api: Any) -> None:
    kernel_id = await kernels.start("async")
    with stopped(kernels.pid(kernel_id)):
        for _ in range(3):
            assert (await api.snapshot(kernel_id))[0] == 504

    await kernels.client(kernel_id)  # answering again
    status, state = await api.snapshot(kernel_id)

    assert status == 200, state
    assert state["pid"] == kernels.pid(kernel_id)
