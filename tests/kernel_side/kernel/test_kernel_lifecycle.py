"""Shutting down: on request (control channel), and on its own when the parent process dies."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
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


RESTORED_AT_EXIT = """
import atexit, builtins, getpass, signal, sys

def _report(path={path!r}):
    with open(path, "w") as f:
        f.write(repr((
            sys.stdout is sys.__stdout__,
            sys.stderr is sys.__stderr__,
            builtins.input.__module__,
            getpass.getpass.__module__,
            signal.getsignal(signal.SIGINT) is signal.default_int_handler,
        )))

atexit.register(_report)
"""


def test_clean_shutdown_closes_sockets_in_their_threads_and_restores_the_interpreter(
    backend: str, kernel_env: IsolatedEnv, tmp_path: Path
) -> None:
    """Run by hand (debug log on a pipe): each socket closed by the thread that owns it, the
    context terminated, the heartbeat joined, streams and builtins restored, exit code 0."""
    connection_file = str(tmp_path / "kernel.json")
    write_connection_file(connection_file, ip="127.0.0.1", key=secrets.token_hex(16).encode())
    kernel = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "async_kernel",
            "-f",
            connection_file,
            "--backend",
            backend,
            "--log-level",
            "DEBUG",
        ],
        env=kernel_env.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    report = tmp_path / "restored.txt"
    try:
        client.start_channels(hb=False)
        client.wait_for_ready(timeout=START_TIMEOUT)
        reply = client.execute_interactive(
            RESTORED_AT_EXIT.format(path=str(report)), timeout=30, output_hook=lambda m: None
        )
        assert reply["content"]["status"] == "ok"
        msg = client.session.msg("shutdown_request", {"restart": False})
        client.control_channel.send(msg)
        shutdown = client.control_channel.get_msg(timeout=30)
        assert shutdown["content"]["status"] == "ok"
        _, stderr = kernel.communicate(timeout=30)
    finally:
        client.stop_channels()
        if kernel.poll() is None:
            kernel.kill()
            kernel.wait()
    assert kernel.returncode == 0, stderr
    for line in (
        "Closed the shell socket in thread ShellChannel",
        "Closed the stdin socket in thread ShellChannel",
        "Closed the control socket in thread ControlThread",
        "Closed the iopub socket in thread ShellChannel",
        "Terminated the zmq context",
        "Joined the heartbeat thread",
    ):
        assert line in stderr, f"{line!r} not in the kernel's log:\n{stderr}"
    for bad in ("Traceback", "lost sys.stderr", "Exception ignored"):
        assert bad not in stderr, stderr
    assert report.read_text() == "(True, True, 'builtins', 'getpass', True)"
