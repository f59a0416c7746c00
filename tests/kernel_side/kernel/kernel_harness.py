"""Real async-kernel processes for tests: an isolated Jupyter environment and a checked client.

- [IsolatedEnv][]: a temporary Jupyter/IPython environment with the `async` and `async-trio`
  kernelspecs installed into a prefix on `JUPYTER_PATH` (by `python -m async_kernel install`).
- [KernelSession][]: a kernel started from its kernelspec with `jupyter_client`'s
  `KernelManager`, and a `BlockingKernelClient` whose every received message is checked against
  the messaging spec (`kernel_msgspec.check_message`). Messages that arrive while waiting for
  another one are kept, so requests can be pipelined and answers collected in any order.

Nothing here sleeps to synchronise: every wait is on a message, with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from kernel_msgspec import Message, check_message

BACKENDS = ("asyncio", "trio")
SPEC_NAMES = {"asyncio": "async", "trio": "async-trio"}

TIMEOUT = 20.0
"""Default seconds to wait for one reply or one cell's output (generous for a loaded CI box)."""

START_TIMEOUT = 60.0
"""Seconds a kernel may take to start answering."""


@dataclass
class IsolatedEnv:
    """A private Jupyter + IPython environment with the async kernelspecs installed."""

    root: Path
    overrides: dict[str, str]

    @property
    def prefix(self) -> Path:
        """The prefix the kernelspecs were installed into (`PREFIX/share/jupyter/kernels`)."""
        return self.root / "prefix"

    def environ(self) -> dict[str, str]:
        """The full environment for a kernel process (or a helper process)."""
        return {**os.environ, **self.overrides}

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Set the overrides in this process's `os.environ` for the duration of the block.

        `jupyter_client` finds kernelspecs, writes connection files and builds the kernel's
        environment from `os.environ` at start time, so kernels are started inside this.
        """
        saved = {name: os.environ.get(name) for name in self.overrides}
        os.environ.update(self.overrides)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def make_isolated_env(root: Path) -> IsolatedEnv:
    """Create the environment under `root` and install both default kernelspecs into it.

    IPython's history database lives in memory-backed storage when the system has it: IPython
    commits history after every cell, and an fsync per cell would dominate the pipelining tests.
    """
    ipython_dir = Path(tempfile.mkdtemp(prefix="async-kernel-ipython-", dir=_fast_tmp()))
    overrides = {
        "JUPYTER_PLATFORM_DIRS": "1",
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "JUPYTER_PATH": str(root / "prefix" / "share" / "jupyter"),
        "JUPYTER_CONFIG_PATH": str(root / "config"),
        "IPYTHONDIR": str(ipython_dir),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("config", "data", "runtime"):
        (root / name).mkdir(parents=True, exist_ok=True)
    env = IsolatedEnv(root=root, overrides=overrides)
    for backend in BACKENDS:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "async_kernel",
                "install",
                "--prefix",
                str(env.prefix),
                "--backend",
                backend,
            ],
            env=env.environ(),
            check=True,
            capture_output=True,
            timeout=60,
        )
    return env


def remove_isolated_env(env: IsolatedEnv) -> None:
    """Delete the parts of `env` that live outside its root (the IPython directory)."""
    shutil.rmtree(env.overrides["IPYTHONDIR"], ignore_errors=True)


def _fast_tmp() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


_current_env: IsolatedEnv | None = None


def set_current_env(env: IsolatedEnv | None) -> None:
    """Publish the session's environment to code that cannot take fixtures (unittest classes)."""
    global _current_env
    _current_env = env


def current_env() -> IsolatedEnv:
    """The session's environment (set by the `kernel_env` fixture)."""
    assert _current_env is not None, "the kernel_env fixture has not run"
    return _current_env


@dataclass
class Execution:
    """One execute request's reply and the iopub messages addressed to it (busy to idle)."""

    msg_id: str
    reply: Message
    iopub: list[Message]

    @property
    def content(self) -> dict[str, Any]:
        """The execute_reply content."""
        return self.reply["content"]

    @property
    def status(self) -> str:
        """The execute_reply status."""
        return str(self.content["status"])

    def outputs(self, msg_type: str) -> list[Message]:
        """The iopub messages of one type, in arrival order."""
        return [m for m in self.iopub if m["msg_type"] == msg_type]

    def stream(self, name: str = "stdout") -> str:
        """All text of one stream, concatenated in arrival order."""
        return "".join(
            m["content"]["text"] for m in self.outputs("stream") if m["content"]["name"] == name
        )


@dataclass
class KernelSession:
    """A running kernel and a client that checks every message it receives."""

    manager: KernelManager
    client: BlockingKernelClient
    backend: str
    # Messages received while waiting for another one: replies by channel and parent msg_id,
    # iopub messages by parent msg_id.
    _replies: dict[str, dict[str, Message]] = field(default_factory=lambda: defaultdict(dict))
    _iopub: dict[str, list[Message]] = field(default_factory=lambda: defaultdict(list))
    iopub_log: list[Message] = field(default_factory=list)
    """Every iopub message received, in arrival order (cleared by `sync`)."""

    # --- life cycle --------------------------------------------------------------------------

    @classmethod
    def start(cls, backend: str, env: IsolatedEnv, *, heartbeat: bool = False) -> KernelSession:
        """Start a kernel from the `async` / `async-trio` kernelspec and wait until it answers."""
        with env.applied():
            manager = KernelManager(kernel_name=SPEC_NAMES[backend])
            manager.start_kernel()
        client = manager.client()
        client.start_channels(hb=heartbeat)
        try:
            client.wait_for_ready(timeout=START_TIMEOUT)
        except BaseException:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
            raise
        return cls(manager=manager, client=client, backend=backend)

    @property
    def pid(self) -> int:
        """The kernel process's pid."""
        provisioner = self.manager.provisioner
        assert provisioner is not None
        pid = getattr(provisioner, "pid", None) or provisioner.process.pid  # type: ignore[attr-defined]
        return int(pid)

    def close(self) -> None:
        """Stop the client and shut the kernel down (killing it if it does not stop)."""
        self.client.stop_channels()
        if self.manager.has_kernel:
            self.manager.shutdown_kernel(now=not self.manager.is_alive())

    # --- sending -----------------------------------------------------------------------------

    def send(
        self,
        msg_type: str,
        content: dict[str, Any] | None = None,
        *,
        channel: str = "shell",
    ) -> str:
        """Send a request on `channel` (shell, control or stdin); return its msg_id."""
        msg = self.client.session.msg(msg_type, content or {})
        getattr(self.client, f"{channel}_channel").send(msg)
        return str(msg["header"]["msg_id"])

    def request(
        self,
        msg_type: str,
        content: dict[str, Any] | None = None,
        *,
        channel: str = "shell",
        timeout: float = TIMEOUT,
    ) -> Message:
        """Send a request and return its checked reply (`<type>_reply`, same parent msg_id)."""
        msg_id = self.send(msg_type, content, channel=channel)
        reply_type = msg_type.removesuffix("_request") + "_reply"
        return self.reply(msg_id, channel=channel, msg_type=reply_type, timeout=timeout)

    def execute_async(self, code: str, **content: Any) -> str:
        """Send an execute_request (spec defaults, stdin not allowed); return its msg_id."""
        full = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        full.update(content)
        return self.send("execute_request", full)

    def execute(self, code: str, *, timeout: float = TIMEOUT, **content: Any) -> Execution:
        """Execute `code` and return its reply and all of its iopub output, checked."""
        msg_id = self.execute_async(code, **content)
        return self.collect(msg_id, timeout=timeout)

    def collect(self, msg_id: str, *, timeout: float = TIMEOUT) -> Execution:
        """The execute_reply of `msg_id` and its iopub messages from busy to idle."""
        deadline = time.monotonic() + timeout
        reply = self.reply(msg_id, msg_type="execute_reply", timeout=timeout)
        messages = self.iopub_until_idle(msg_id, timeout=max(deadline - time.monotonic(), 1.0))
        return Execution(msg_id=msg_id, reply=reply, iopub=messages)

    # --- receiving ---------------------------------------------------------------------------

    def reply(
        self,
        msg_id: str,
        *,
        channel: str = "shell",
        msg_type: str | None = None,
        timeout: float = TIMEOUT,
    ) -> Message:
        """Wait for the reply to `msg_id` on `channel`; others that arrive first are kept."""
        deadline = time.monotonic() + timeout
        kept = self._replies[channel]
        while msg_id not in kept:
            msg = self._get(channel, deadline, f"the reply to {msg_id} on {channel}")
            kept[msg["parent_header"].get("msg_id", "")] = msg
        return check_message(kept.pop(msg_id), msg_type, msg_id)

    def replied(self, msg_id: str, *, channel: str = "shell") -> bool:
        """Whether the reply to `msg_id` has arrived (reads what is there, never waits)."""
        kept = self._replies[channel]
        socket_channel = getattr(self.client, f"{channel}_channel")
        while msg_id not in kept and socket_channel.msg_ready():
            msg = check_message(socket_channel.get_msg(timeout=0))
            kept[msg["parent_header"].get("msg_id", "")] = msg
        return msg_id in kept

    def iopub_until_idle(self, msg_id: str, *, timeout: float = TIMEOUT) -> list[Message]:
        """The iopub messages addressed to `msg_id`, from its busy status to its idle status.

        Asserts that busy comes first and idle last, and that each message is well formed.
        """
        deadline = time.monotonic() + timeout
        kept = self._iopub[msg_id]
        while not any(_is_status(m, "idle") for m in kept):
            msg = self._get("iopub", deadline, f"idle status for {msg_id}")
            self._iopub[msg["parent_header"].get("msg_id", "")].append(msg)
        messages = self._iopub.pop(msg_id)
        assert _is_status(messages[0], "busy"), f"first message is not busy: {messages[0]}"
        idle = next(i for i, m in enumerate(messages) if _is_status(m, "idle"))
        assert idle == len(messages) - 1, f"messages after idle: {messages[idle + 1 :]}"
        return messages[1:idle]

    def iopub_matching(
        self, predicate: Any, *, timeout: float = TIMEOUT, what: str = "an iopub message"
    ) -> Message:
        """The first iopub message (kept or new) for which `predicate(msg)` is true."""
        deadline = time.monotonic() + timeout
        while True:
            for messages in self._iopub.values():
                for i, msg in enumerate(messages):
                    if predicate(msg):
                        return messages.pop(i)
            msg = self._get("iopub", deadline, what)
            self._iopub[msg["parent_header"].get("msg_id", "")].append(msg)

    def stdin_message(self, *, timeout: float = TIMEOUT) -> Message:
        """The next message on the stdin channel (checked)."""
        return self._get("stdin", time.monotonic() + timeout, "a stdin message")

    def answer_input(self, request: Message, value: str) -> None:
        """Send the input_reply to an input_request."""
        self.client.stdin_channel.send(
            self.client.session.msg("input_reply", {"value": value}, parent=request)
        )

    def wait_until_queued(self, pending: int, *, timeout: float = TIMEOUT) -> None:
        """Ask caller_state (control) until `pending` execute requests wait behind the running one."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.request("caller_state_request", channel="control", timeout=timeout)
            [queue] = [
                q for q in state["content"]["shell"]["queues"] if q["msg_type"] == "execute_request"
            ]
            if queue["pending"] == pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{queue['pending']} execute requests queued, not {pending}")

    def wait_until_idle_queue(self, *, timeout: float = TIMEOUT) -> None:
        """Ask caller_state (control) until no execute request waits or runs."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.request("caller_state_request", channel="control", timeout=timeout)
            [queue] = [
                q for q in state["content"]["shell"]["queues"] if q["msg_type"] == "execute_request"
            ]
            if queue["pending"] == 0 and not queue["running"]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"execute queue still busy: {queue}")

    def sync(self, *, timeout: float = TIMEOUT) -> None:
        """Wait until earlier cells have finished, then forget messages nobody claimed.

        A silent `pass` cell runs after every cell sent before it; its idle status marks the
        end of their output.
        """
        marker = self.execute_async("pass", silent=True, store_history=False)
        self.collect(marker, timeout=timeout)
        self._replies.clear()
        self._iopub.clear()
        self.iopub_log.clear()

    def statuses(self, *, until: str, timeout: float = TIMEOUT) -> list[tuple[str, str]]:
        """Read iopub until the idle of `until`; return every status so far as (state, parent)."""
        self.iopub_until_idle(until, timeout=timeout)
        return [
            (m["content"]["execution_state"], m["parent_header"].get("msg_id", ""))
            for m in self.iopub_log
            if m["msg_type"] == "status"
        ]

    def status_after_idle_of(self, msg_id: str, *, timeout: float = TIMEOUT) -> tuple[str, str]:
        """The first status published after the idle of `msg_id`, as (state, parent msg_id)."""
        self.iopub_until_idle(msg_id, timeout=timeout)
        [idle_at] = [
            i
            for i, m in enumerate(self.iopub_log)
            if _is_status(m, "idle") and m["parent_header"].get("msg_id") == msg_id
        ]
        deadline = time.monotonic() + timeout
        while True:
            later = [m for m in self.iopub_log[idle_at + 1 :] if m["msg_type"] == "status"]
            if later:
                return later[0]["content"]["execution_state"], later[0]["parent_header"].get(
                    "msg_id", ""
                )
            msg = self._get("iopub", deadline, f"a status after the idle of {msg_id}")
            self._iopub[msg["parent_header"].get("msg_id", "")].append(msg)

    def _get(self, channel: str, deadline: float, what: str) -> Message:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {what} in time")
        try:
            msg: Message = getattr(self.client, f"{channel}_channel").get_msg(timeout=remaining)
        except queue.Empty:
            raise TimeoutError(f"no {what} in time") from None
        checked = check_message(msg)
        if channel == "iopub":
            self.iopub_log.append(checked)
        return checked


@dataclass
class Hold:
    """A flag file that a cell (or handler) waits for: the test holds it, then releases it.

    Tests hold a cell this way instead of letting it sleep for a while, so a loaded machine
    cannot end the cell before the test has done what it must do while the cell runs.
    """

    path: Path

    @property
    def blocking(self) -> str:
        """Code that blocks the thread it runs in until released."""
        return (
            f"import os as _os, time as _time\n"
            f"while not _os.path.exists({str(self.path)!r}):\n    _time.sleep(0.005)\n"
        )

    @property
    def awaiting(self) -> str:
        """Code (for a cell) that awaits until released, letting the event loop run."""
        return (
            f"import os as _os, anyio as _anyio\n"
            f"while not _os.path.exists({str(self.path)!r}):\n    await _anyio.sleep(0.005)\n"
        )

    def code(self, how: str) -> str:
        """`blocking` or `awaiting` code, by name."""
        return self.blocking if how == "blocking" else self.awaiting

    def release(self) -> None:
        """Let the held code go on."""
        self.path.touch()


def _is_status(msg: Message, state: str) -> bool:
    return msg["msg_type"] == "status" and msg["content"]["execution_state"] == state


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait until process `pid` has exited (gone, or a zombie nobody reaped); True if it did."""
    import psutil

    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    deadline = time.monotonic() + timeout
    while True:
        try:
            process.wait(timeout=0.05)
            return True
        except psutil.TimeoutExpired:
            pass
        except psutil.NoSuchProcess:
            return True
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False


IMPORTING = (
    "import importlib, sys\n"
    "while True:\n"
    "    sys.modules.pop('colorsys', None)\n"
    "    importlib.import_module('colorsys')\n"
    "    for _ in range(1_000_000):\n"
    "        pass"
)
"""A cell that imports over and over (importlib's frozen frames), where an interrupt must not
land, and spends as long in its own code, where it does (an interrupt waits until then)."""

IMPORT_IN_ANOTHER_THREAD = (
    "import importlib, sys, threading\n"
    "sys.modules.pop('colorsys', None)\n"
    "t = threading.Thread(target=importlib.import_module, args=('colorsys',))\n"
    "t.start()\n"
    "t.join(10)\n"
    "print('imports', 'stuck' if t.is_alive() else 'work')"
)
