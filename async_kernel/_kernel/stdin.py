"""`input()` and `getpass()` for user code: an `input_request` to the client of the running cell.

The messaging spec routes an `input_request` to the client that sent the execute request, on the
stdin channel, and expects an `input_reply` whose parent is that input_request. So:

- a cell registers its *route* (the client's routing identities and `allow_stdin`) for as long as
  it runs; `input()` uses the route of the cell its context belongs to (threads and callers the
  cell started carry its context), else the running cell's;
- each `input()` waits on its own [Pending][async_kernel.Pending], keyed by the msg_id of its
  input_request; an `input_reply` completes the waiter it answers and nothing else, and a reply
  that answers no waiting request (stale, duplicated, or for an interrupted `input()`) is logged
  and dropped;
- an interrupt fails every waiting `input()` with KeyboardInterrupt (deleting a subshell fails
  those of its cells); shutdown with EOFError.

`input()` may be called from any thread except the one that owns the stdin socket (it would wait
for a reply that thread must read). It blocks the calling thread, as it does in ipykernel.
[StdinBridge.install][async_kernel._kernel.stdin.StdinBridge.install] puts the bridge in place of
`builtins.input` and `getpass.getpass`. The stdin socket's owner (the ShellChannel thread) reads
its messages with [StdinBridge.on_message][async_kernel._kernel.stdin.StdinBridge.on_message].
"""

from __future__ import annotations

import builtins
import contextlib
import getpass
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import zmq
from IPython.core.error import StdinNotImplementedError

from async_kernel._kernel.channels import SocketChannel
from async_kernel._kernel.messaging import Message, Messenger, current_parent
from async_kernel.pending import InvalidStateError, Pending

if TYPE_CHECKING:
    from async_kernel._kernel.iostream import OutStream
    from async_kernel.caller import Caller

__all__ = ["StdinBridge"]

logger = logging.getLogger("async_kernel.stdin")

DELIVERY_TIMEOUT = 10.0
"""Seconds to wait for the stdin thread to hand an input_request to zmq."""


@dataclass(frozen=True)
class _Route:
    idents: list[bytes]
    parent: Message
    allow_stdin: bool


class StdinBridge:
    """Sends input requests for user code and matches the replies to them. Thread-safe.

    The bridge makes the stdin socket's channel (`channel`), owned by `owner`. `messenger`
    builds the input requests (in the threads that call `input()`); `receiver` parses what
    arrives, in the owner's thread.
    """

    def __init__(
        self, socket: zmq.Socket[Any], owner: Caller, messenger: Messenger, receiver: Messenger
    ) -> None:
        self._messenger = messenger
        self._receiver = receiver
        self._channel = SocketChannel("stdin", socket, owner, self._on_frames)
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}  # running execute msg_id -> route, latest last
        self._waiters: dict[str, Pending[str]] = {}  # input_request msg_id -> its input()
        self._waiter_shells: dict[str, object] = {}  # input_request msg_id -> its subshell_id
        self._closed = False
        self._flush_first: tuple[OutStream, ...] = ()  # set by install()

    # --- cells -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def route(self, parent: Message, idents: list[bytes], allow_stdin: bool) -> Iterator[None]:
        """Let `input()` reach the client of execute request `parent` while the block runs."""
        msg_id = str(parent["header"].get("msg_id", ""))
        with self._lock:
            self._routes[msg_id] = _Route(list(idents), parent, allow_stdin)
        try:
            yield
        finally:
            with self._lock:
                self._routes.pop(msg_id, None)

    def _choose_route(self) -> _Route:
        parent = current_parent.get()
        with self._lock:
            route = None
            if parent is not None:
                route = self._routes.get(str(parent.get("header", {}).get("msg_id", "")))
            if route is None and self._routes:
                route = next(reversed(self._routes.values()))
        if route is None:
            raise StdinNotImplementedError(
                "input() needs a running cell whose client can answer it; no cell is running"
            )
        if not route.allow_stdin:
            raise StdinNotImplementedError(
                "The frontend does not support input requests (allow_stdin is false)"
            )
        return route

    # --- user code ---------------------------------------------------------------------------

    def install(self, streams: Sequence[OutStream]) -> Callable[[], None]:
        """Make `input()` and `getpass.getpass()` ask through this bridge; return the undo.

        Both flush `streams` (the kernel's stdout and stderr) first, so the client has the
        output before the prompt. Shell thread, at start-up (and the undo at shutdown).
        """
        self._flush_first = tuple(streams)
        saved_input, saved_getpass = builtins.input, getpass.getpass
        builtins.input = self.raw_input
        getpass.getpass = self.getpass

        def restore() -> None:
            builtins.input = saved_input
            getpass.getpass = saved_getpass

        return restore

    def raw_input(self, prompt: object = "") -> str:
        """`input()` for user code: an input_request to the client of the running cell.

        Any thread but the stdin socket's owner; raises as `request` does.
        """
        for stream in self._flush_first:
            stream.flush()
        return self.request(str(prompt), password=False)

    def getpass(self, prompt: str = "Password: ", stream: Any = None) -> str:
        """`getpass.getpass()` for user code (`stream` is ignored). As `raw_input`."""
        for out in self._flush_first:
            out.flush()
        return self.request(str(prompt), password=True)

    def request(self, prompt: str, *, password: bool) -> str:
        """Ask the cell's client for a line of input and wait for it (blocks this thread).

        Raises:
            StdinNotImplementedError: no running cell, or its client does not allow stdin.
            KeyboardInterrupt: the kernel was interrupted while waiting.
            EOFError: the kernel is shutting down, or the request could not be delivered.
            RuntimeError: called in the thread that owns the stdin socket.
        """
        if threading.get_ident() == self._channel.owner_thread_id:
            raise RuntimeError("input() cannot be called in the kernel's stdin thread")
        route = self._choose_route()
        msg = self._messenger.build(
            "input_request", {"prompt": prompt, "password": password}, route.parent
        )
        msg_id = str(msg["header"]["msg_id"])
        waiter: Pending[str] = Pending()
        with self._lock:
            if self._closed:
                raise EOFError("the kernel is shutting down")
            self._waiters[msg_id] = waiter
            self._waiter_shells[msg_id] = route.parent.get("header", {}).get("subshell_id")
        try:
            frames = self._messenger.frames(msg, route.idents)
            delivered = self._channel.owner.call_soon(self._channel.send_or_raise, frames)
            try:
                delivered.wait_sync(DELIVERY_TIMEOUT)
            except Exception as e:
                raise EOFError(f"the input_request could not be sent to the client: {e}") from e
            return waiter.wait_sync()
        finally:
            with self._lock:
                self._waiters.pop(msg_id, None)
                self._waiter_shells.pop(msg_id, None)

    # --- the stdin channel (its owner's thread) ----------------------------------------------

    @property
    def channel(self) -> SocketChannel:
        """The stdin socket and its owner."""
        return self._channel

    def _on_frames(self, frames: list[bytes]) -> None:
        try:
            _, msg = self._receiver.parse(frames)
        except ValueError as e:
            logger.warning("Dropped a stdin message: %s", e)
            return
        self.on_message(msg)

    def on_message(self, msg: Message) -> None:
        """Handle a message received on stdin: an input_reply completes the input() it answers."""
        msg_type = msg["header"].get("msg_type")
        if msg_type != "input_reply":
            logger.warning("Dropped an unexpected %r on the stdin channel", msg_type)
            return
        answered = str(msg.get("parent_header", {}).get("msg_id", ""))
        with self._lock:
            waiter = self._waiters.get(answered)
        if waiter is None:
            logger.warning(
                "Dropped an input_reply to %r: no input() is waiting for it (stale or unknown)",
                answered,
            )
            return
        value = msg["content"].get("value", "")
        try:
            waiter.set_result(value if isinstance(value, str) else str(value))
        except InvalidStateError:
            logger.warning("Dropped an input_reply to %r: its input() ended already", answered)

    # --- interrupts and shutdown (any thread) ------------------------------------------------

    def interrupt(self) -> None:
        """Make every waiting `input()` raise KeyboardInterrupt."""
        self._fail_all(KeyboardInterrupt)

    def interrupt_subshell(self, subshell_id: str) -> None:
        """Make every `input()` waiting for a cell of subshell `subshell_id` raise
        KeyboardInterrupt (the subshell is being deleted)."""
        with self._lock:
            waiters = [
                waiter
                for msg_id, waiter in self._waiters.items()
                if self._waiter_shells.get(msg_id) == subshell_id
            ]
        for waiter in waiters:
            with contextlib.suppress(InvalidStateError):
                waiter.set_exception(KeyboardInterrupt())

    def close(self) -> None:
        """Make every waiting and every later `input()` raise EOFError."""
        with self._lock:
            self._closed = True
        self._fail_all(lambda: EOFError("the kernel is shutting down"))

    def _fail_all(self, make_error: Any) -> None:
        with self._lock:
            waiters = list(self._waiters.values())
        for waiter in waiters:
            with contextlib.suppress(InvalidStateError):
                waiter.set_exception(make_error())
