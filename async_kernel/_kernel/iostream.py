"""Publishing on iopub, and `sys.stdout` / `sys.stderr` batched into few stream messages.

[IOPub][async_kernel._kernel.iostream.IOPub] serialises a message in the producing thread and sends
it from there, or hands it to the thread using the iopub socket at that moment
([SocketChannel][async_kernel._kernel.channels.SocketChannel]). Before any other message goes out, buffered stream text is
flushed, so output keeps the order the cell produced it in.

[OutStream][async_kernel._kernel.iostream.OutStream] appends writes to a buffer (cheap, thread-safe) and
publishes them on a short interval, at `flush()`, and before any other iopub message. Text goes
to the request found in the writer's context (`current_parent`), else to the latest execute
request, so output from threads and callers reaches the cell that started the work. Each
shell's cells run in their shell's own context, so a subshell cell's output is addressed to its
request while the main shell's cell writes to its own, at the same time.
[install_streams][async_kernel._kernel.iostream.install_streams] makes them `sys.stdout` and
`sys.stderr`.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from async_kernel._kernel.channels import SocketChannel
from async_kernel._kernel.messaging import Message, Messenger, current_parent
from async_kernel.caller import Caller

__all__ = ["IOPub", "OutStream", "install_streams"]


class IOPub:
    """Sends iopub messages from any thread, in order, through the iopub socket's channel.

    **Status truth.** JupyterLab and jupyter_server keep one last-writer-wins execution state per
    kernel, so the kernel's last `status` must be its real state. Every request gets its own
    `busy` and `idle`; while an execute request runs (in any shell: the main shell or a
    subshell), the idle of any other request, another shell's execute included, is followed by
    `busy` again, addressed to the running execute (the latest started, if several run). The
    rule is applied holding the iopub socket, where every status passes in the order it goes on
    the wire, so a re-published busy can never follow the idle of the execute it is addressed to,
    however the threads race.
    """

    def __init__(self, channel: SocketChannel, messenger: Messenger) -> None:
        self._channel = channel
        self._messenger = messenger
        self.streams: list[OutStream] = []
        # Execute requests between their busy and idle, by msg_id (read and written only by
        # the thread holding the iopub socket).
        self._running_executes: dict[str, Message] = {}

    @property
    def channel(self) -> SocketChannel:
        """The iopub socket and its owner."""
        return self._channel

    def publish(
        self,
        msg_type: str,
        content: dict[str, Any],
        parent: Message | None,
        *,
        metadata: dict[str, Any] | None = None,
        buffers: Sequence[bytes | memoryview] | None = None,
        flush_streams: bool = True,
        hand_over: bool = False,
    ) -> Message:
        """Publish a message addressed to `parent`; stream text buffered so far goes first.

        Thread-safe: messages published by one thread leave in the order they were published.
        `hand_over`: leave the sending to the socket's owner thread (`SocketChannel.send`).
        """
        if flush_streams:
            for stream in self.streams:
                stream.flush()
        msg = self._messenger.build(msg_type, content, parent, metadata=metadata)
        frames = self._messenger.frames(msg, [msg_type.encode()], buffers)
        self._channel.send(frames, hand_over=hand_over)
        return msg

    def status(
        self,
        state: str,
        parent: Message | None,
        *,
        execute: bool = False,
        hand_over: bool = False,
    ) -> None:
        """Publish `status` (busy / idle / starting) for `parent`. Thread-safe.

        `execute` marks the busy and idle that bracket an execute request: between them, the
        idle of any other request (another shell's execute included) is followed by `busy` for
        the running execute. `hand_over` as for `publish`.
        """
        if state != "busy":
            for stream in self.streams:
                stream.flush()
        msg = self._messenger.build("status", {"execution_state": state}, parent)
        frames = self._messenger.frames(msg, [b"status"])
        self._channel.run_with_socket(
            self._send_status, frames, state, parent, execute, hand_over=hand_over
        )

    def _send_status(
        self, frames: list[Any], state: str, parent: Message | None, execute: bool
    ) -> None:
        """Send one status and apply the status-truth rule. Holding the iopub socket, as an item of
        the channel's outbox: the re-published busy follows the idle with nothing between."""
        self._channel.send_now(frames)
        running = self._running_executes
        if execute:
            msg_id = (parent or {}).get("header", {}).get("msg_id", "")
            if state == "busy":
                running[msg_id] = parent or {}
            else:
                running.pop(msg_id, None)
        if state == "idle" and running:
            current = next(reversed(running.values()))
            busy = self._messenger.build("status", {"execution_state": "busy"}, current)
            self._channel.send_now(self._messenger.frames(busy, [b"status"]))


class _Run(list[str]):
    """Consecutive writes addressed to one parent, in the order they were made.

    Writers append to it without a lock (`list.append` is atomic), then compare its length with
    `limit`: a flush sets `limit` to 0 before it takes the text, so a writer whose append came
    too late for that flush sees it and hands its text on (see `OutStream._write_slow`).
    """

    __slots__ = ("limit", "parent")

    def __init__(self, parent: Message | None, limit: int) -> None:
        super().__init__()
        self.parent = parent
        self.limit = limit


# The latest run when there is none: its parent (a fresh dict) is no writer's, so the next write
# starts a run.
_NO_RUN = _Run({}, 0)


class OutStream(io.TextIOBase):
    """A text stream whose writes become batched `stream` messages on iopub. Thread-safe."""

    interval: float = 0.05
    """Seconds between the first buffered write and its automatic flush."""

    max_buffered: int = 100_000
    """Writes buffered before a write flushes at once (bounds memory and message size)."""

    def __init__(
        self,
        name: str,
        iopub: IOPub,
        flusher: Caller,
        default_parent: Callable[[], Message | None],
    ) -> None:
        super().__init__()
        self.name = name
        self._iopub = iopub
        self._flusher = flusher
        self._default_parent = default_parent
        self._lock = threading.Lock()
        # Runs of consecutive writes addressed to the same parent, oldest first; the latest is
        # `_latest[0]` (read without the lock; replaced only under it).
        self._runs: list[_Run] = []
        self._latest: list[_Run] = [_NO_RUN]
        self._flush_scheduled = False
        # `print` looks `write` up on the stream for every argument, separator and end: a plain
        # function in the instance's dict, reading closure cells, is the cheapest there is
        # (measured: ~20% less per `print` than the method, whose every attribute read costs
        # more on an io subclass). `OutStream.write(stream, s)` calls the same function; a
        # subclass that overrides `write` keeps its own.
        self._write = self._make_write()
        if type(self).write is OutStream.write:
            vars(self)["write"] = self._write

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:
        """Buffer `s` for the request found in the writer's context (else the default parent);
        return its length. Thread-safe."""
        return self._write(s)

    def _make_write(self) -> Callable[[str], int]:
        get_parent = current_parent.get
        default_parent = self._default_parent
        latest = self._latest
        write_slow = self._write_slow

        def write(s: str) -> int:
            # The hot path of `print`: a write to the parent of the latest run is one append,
            # with no lock. Anything else (another parent, the first write after a flush, a
            # full run, a run a flush took meanwhile) goes to `_write_slow`, under the lock.
            if type(s) is not str and not isinstance(s, str):
                raise TypeError(f"write() argument must be str, not {type(s).__name__}")
            parent = get_parent() or default_parent()
            run = latest[0]
            if run.parent is parent:
                run.append(s)
                if len(run) < run.limit:
                    return len(s)
                write_slow(s, parent, run)
            else:
                write_slow(s, parent, None)
            return len(s)

        return write

    def _write_slow(self, s: str, parent: Message | None, appended_to: _Run | None) -> None:
        """Start a run for `s`; or, if `s` was appended to `appended_to` already, handle that
        run, found full or taken by a flush."""
        flush_now = schedule = False
        with self._lock:
            if appended_to is None:
                texts = [s]
            elif appended_to.limit:  # still buffered, and full
                texts = []
                flush_now = True
            else:
                # A flush took the run (`limit` 0, set before it took the text): what it did
                # not take was appended after it, and starts a run of its own.
                texts = appended_to[:]
                del appended_to[: len(texts)]
            if texts:
                run = _Run(parent, self.max_buffered)
                run.extend(texts)
                self._runs.append(run)
                self._latest[0] = run
                if len(run) >= run.limit:
                    flush_now = True
                elif not self._flush_scheduled:
                    schedule = self._flush_scheduled = True
        if flush_now:
            self.flush()
        elif schedule:
            try:
                self._flusher.call_later(self.interval, self.flush)
            except RuntimeError:  # iopub is shutting down: flush now instead
                self.flush()

    def flush(self) -> None:
        """Publish everything buffered now, one message per run of text with the same parent."""
        with self._lock:
            runs, self._runs = self._runs, []
            self._latest[0] = _NO_RUN
            self._flush_scheduled = False
            for run in runs:
                run.limit = 0  # before taking the text: a later append then sees it
            # Publishing inside the lock keeps the order of concurrent flushes on the wire.
            for run in runs:
                texts = run[:]
                del run[: len(texts)]
                text = "".join(texts)
                if text:
                    self._iopub.publish(
                        "stream", {"name": self.name, "text": text}, run.parent, flush_streams=False
                    )


def install_streams(stdout: OutStream, stderr: OutStream) -> Callable[[], None]:
    """Make `stdout` and `stderr` the interpreter's `sys.stdout` and `sys.stderr`; return what
    undoes it. Call (and undo) in the shell thread, at start-up and shutdown."""
    saved_stdout, saved_stderr = sys.stdout, sys.stderr
    sys.stdout = stdout
    sys.stderr = stderr

    def restore() -> None:
        sys.stdout, sys.stderr = saved_stdout, saved_stderr

    return restore
