"""Shutting down: on request (control channel), and on its own when the parent process dies."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from kernel_harness import SPEC_NAMES, START_TIMEOUT, IsolatedEnv, KernelSession, wait_for_exit

pytestmark = pytest.mark.timeout(90)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("restart", [False, True])
def test_shutdown_request_replies_then_exits(fresh_kernel: KernelSession, restart: bool) -> None:
    pid = fresh_kernel.pid
    fresh_kernel.execute("import threading\nthreading.Thread(target=lambda: None).start()")
    children = _descendants(pid)
    started = time.monotonic()
    reply = fresh_kernel.request("shutdown_request", {"restart": restart}, channel="control")
    assert reply["content"] == {"status": "ok", "restart": restart}
    process = fresh_kernel.manager.provisioner.process  # type: ignore[union-attr]
    process.wait(timeout=5)
    elapsed = time.monotonic() - started
    assert process.returncode == 0, f"exit code {process.returncode}"
    assert elapsed < 5, f"the kernel took {elapsed:.1f}s to exit"
    assert not fresh_kernel.manager.is_alive()
    assert not psutil.pid_exists(pid)
    assert not [p for p in children if p.is_running()], "the kernel left processes behind"


@pytest.mark.parametrize(
    "cell",
    ["import anyio\nawait anyio.sleep(60)", "import time\ntime.sleep(60)"],
    ids=["awaits", "blocks-the-shell-thread"],
)
def test_shutdown_while_a_cell_runs(fresh_kernel: KernelSession, cell: str) -> None:
    # A blocking cell is interrupted so the kernel exits, instead of waiting to be killed.
    fresh_kernel.execute_async(cell)
    reply = fresh_kernel.request("shutdown_request", {"restart": False}, channel="control")
    assert reply["content"]["status"] == "ok"
    process = fresh_kernel.manager.provisioner.process  # type: ignore[union-attr]
    process.wait(timeout=5)
    assert not fresh_kernel.manager.is_alive()


def test_kernel_manager_shutdown_is_graceful(fresh_kernel: KernelSession) -> None:
    """`KernelManager.shutdown_kernel` asks first; the kernel exits before being killed."""
    process = fresh_kernel.manager.provisioner.process  # type: ignore[union-attr]
    fresh_kernel.client.stop_channels()
    started = time.monotonic()
    fresh_kernel.manager.shutdown_kernel(now=False)
    assert time.monotonic() - started < 5
    assert process.returncode == 0, f"killed, not shut down (exit code {process.returncode})"


LAUNCHER = """
import sys
from jupyter_client.manager import KernelManager
manager = KernelManager(kernel_name=sys.argv[1])
manager.start_kernel()
client = manager.client()
client.start_channels(hb=False)
client.wait_for_ready(timeout={timeout})
print(manager.provisioner.pid, flush=True)
sys.stdin.read()  # until killed
"""


def test_kernel_exits_when_its_parent_process_dies(backend: str, kernel_env: IsolatedEnv) -> None:
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(LAUNCHER.format(timeout=START_TIMEOUT)),
            SPEC_NAMES[backend],
        ],
        env=kernel_env.environ(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    kernel_pid = 0
    try:
        assert launcher.stdout is not None
        line = launcher.stdout.readline()
        assert line.strip().isdigit(), f"the launcher printed {line!r}"
        kernel_pid = int(line)
        assert psutil.Process(kernel_pid).ppid() == launcher.pid
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(timeout=10)
        started = time.monotonic()
        assert wait_for_exit(kernel_pid, timeout=10), "the orphaned kernel is still running"
        elapsed = time.monotonic() - started
        assert elapsed < 5, f"the orphaned kernel took {elapsed:.1f}s to exit"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        if kernel_pid and psutil.pid_exists(kernel_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(kernel_pid, signal.SIGKILL)
