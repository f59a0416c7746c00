"""zmq sockets shared by threads under a lock, read by one Caller thread each.

zmq sockets are not thread-safe: libzmq allows a socket to move between threads only behind a
full memory barrier. So each socket has a lock, and a thread uses the socket only while it holds
the lock. Every thread hands frames (or a function to run with the socket) to the channel's
*outbox*, one FIFO for all threads, then works the outbox off itself if the lock is free; if
another thread holds it, that thread works off what was added before it lets go. So a message
goes on the wire after everything any thread handed over before it (a stream flushed in one
thread cannot overtake a status another thread published first), and a thread that publishes
while nobody else is sending sends at once, without waking the socket's owner: measured, the
wake-up of another thread (its event loop's self-pipe, then the scheduler) cost more than the
rest of an empty cell's messages together.

Reading is the owner's alone: the thread of the Caller that serves the socket, which waits on the
socket's edge-triggered notification fd with `anyio.wait_readable` (asyncio and trio alike), and
runs the channel's message handler. A send may consume the edge that announced incoming messages,
so after every send the sender looks at the socket's events: the owner then reads at once, any
other thread (only if something is waiting) asks the owner to read.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import anyio
import zmq
import zmq.backend

from async_kernel.caller import Caller

__all__ = ["SocketChannel", "send_message"]

logger = logging.getLogger("async_kernel.channels")

MessageHandler = Callable[[list[bytes]], None]

_send_frame: Callable[..., Any] = zmq.backend.Socket.send
"""pyzmq's compiled `send` (what `Socket.send_multipart` calls for each frame, by way of
`Socket.send`, both Python)."""


def send_message(socket: zmq.Socket[Any], frames: Sequence[Any]) -> None:
    """Send `frames` as one multipart message, zero-copy above pyzmq's copy threshold, as
    `socket.send_multipart(frames, copy=False)` does.

    The frames go out in one call from Python into compiled code (`map` calling pyzmq's
    compiled send), which runs no Python frame in between: a Python signal handler that raises
    (a user's SIGALRM timeout, in the main thread) runs before the message or after it, never
    between two of its frames, where it would leave half a message on the socket for the next
    message to be glued to. (A zero-copy frame of 64 KiB or more, and a send interrupted while
    it blocks, can still run Python code in between, as in pyzmq's own `send_multipart`.)
    """
    last = len(frames) - 1
    flags = itertools.chain(itertools.repeat(zmq.SNDMORE, last), (0,))
    sends = map(_send_frame, itertools.repeat(socket), frames, flags, itertools.repeat(False))
    deque(sends, 0)


def _has_incoming(socket: zmq.Socket[Any]) -> bool:
    """Whether a message waits to be read (zmq's events, which also re-arm the socket's fd)."""
    return not socket.closed and bool(cast(int, socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN)


class SocketChannel:
    """One zmq socket, its lock, its owning caller, and (for request sockets) a handler for
    incoming frames.

    The handler runs in the owner's thread, synchronously, never holding the lock; it must not
    block for long, and any exception it raises is logged and dropped so one bad message cannot
    stop the channel.
    """

    def __init__(
        self, name: str, socket: zmq.Socket[Any], owner: Caller, on_message: MessageHandler | None
    ) -> None:
        self.name = name
        self.socket = socket
        self.owner = owner
        self._on_message = on_message
        self._draining = False
        self._owner_thread = owner.thread.ident if owner.thread is not None else None
        self._lock = threading.Lock()
        """Held by the thread that uses the socket; never while a handler runs."""
        self._holder: int | None = None  # the ident of the thread holding `_lock`
        self._items_run = 0  # outbox items run so far (by the thread holding `_lock`)
        # What threads handed over, in the order they did (deque appends are atomic).
        self._outbox: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()

    async def serve(self) -> None:
        """Read and dispatch messages until cancelled. Runs in the owner's loop."""
        fd: int = self.socket.getsockopt(zmq.FD)  # type: ignore[assignment]
        while not self.socket.closed:
            self._drain()
            await anyio.wait_readable(fd)

    def _drain(self) -> None:
        """Read and handle every message waiting. Owner thread only."""
        if self._draining or self._on_message is None:
            return
        self._draining = True
        socket = self.socket
        try:
            while True:
                items_run = self._items_run
                with self._holding():
                    if not _has_incoming(socket):
                        frames = None
                    else:
                        frames = socket.recv_multipart(zmq.NOBLOCK)
                if frames is None:
                    # What other threads handed over, sent on letting go of the socket (after
                    # the look at its events), may have taken the edge of a new message.
                    if self._items_run == items_run or socket.closed:
                        return
                    continue
                try:
                    self._on_message(frames)
                except Exception:
                    logger.exception("Error handling a message on the %s channel", self.name)
        finally:
            self._draining = False

    @contextlib.contextmanager
    def _holding(self) -> Iterator[None]:
        """Hold the socket, waiting for it if another thread has it. What other threads handed
        over meanwhile (they found the socket taken) is sent on letting go (`_work_off`), so
        nothing is stranded in the outbox."""
        self._lock.acquire()
        try:
            self._holder = threading.get_ident()
            yield
        finally:
            self._holder = None
            self._lock.release()
            self._work_off()

    def send(self, frames: list[Any], *, hand_over: bool = False) -> None:
        """Send `frames` from any thread, after everything handed to this channel before (see
        `run_with_socket` for `hand_over`)."""
        self.run_with_socket(self._send_now, frames, hand_over=hand_over)

    def run_with_socket(
        self, func: Callable[..., Any], *args: Any, hand_over: bool = False
    ) -> None:
        """Call `func(*args)` holding the socket, after everything handed over before it (by
        any thread): `func` may use the socket, e.g. with `send_now`. Any thread.

        It runs in this thread if the socket is free, else in the thread that holds it, before
        that thread lets go; `func` must be quick and must not block. An exception it raises
        is logged, and the outbox goes on. With `hand_over`, another thread than the owner
        leaves it to the owner instead (a call in its next drain), for a thread with more work
        queued, which then goes on while the owner sends (the order is the same either way).
        """
        self._outbox.append((func, args))
        if hand_over and threading.get_ident() != self._owner_thread:
            self.owner.call_direct(self._work_off)
        else:
            self._work_off()

    def _work_off(self) -> None:
        """Run the outbox in order if the socket is free (else its holder will). Any thread; a
        call from inside an outbox item returns at once (the outer call runs what was added)."""
        outbox = self._outbox
        lock = self._lock
        reads = self._on_message is not None
        is_owner = threading.get_ident() == self._owner_thread
        sent = waiting = False
        # After letting go, look again: an item handed over while this thread held the lock
        # (its thread found the lock taken and left it to this one) must not be stranded.
        while outbox:
            if not lock.acquire(blocking=False):
                break
            try:
                self._holder = threading.get_ident()
                self._run_outbox()
                sent = True
                if reads and not is_owner and not waiting:
                    # The sends may have taken the edge that announced incoming messages.
                    waiting = _has_incoming(self.socket)
            finally:
                self._holder = None
                lock.release()
        if not sent or not reads:
            return
        if is_owner:
            self._drain()
        elif waiting:
            # RuntimeError: the owner has stopped, the channel is closing.
            with contextlib.suppress(RuntimeError):
                self.owner.call_direct(self._drain)

    def _run_outbox(self) -> None:
        outbox = self._outbox
        while outbox:
            func, args = outbox.popleft()
            self._items_run += 1
            try:
                func(*args)
            except Exception:
                logger.exception("Error sending on the %s channel", self.name)

    def send_now(self, frames: list[Any]) -> None:
        """Send `frames` at once, ahead of the outbox. Only inside an outbox item (the socket's
        holder), for an item that sends more than one message with nothing queued between."""
        self._check_holder()
        self._send_now(frames)

    @property
    def owner_thread_id(self) -> int | None:
        """The ident of the thread that owns the socket (and reads it)."""
        return self._owner_thread

    def send_or_raise(self, frames: list[Any]) -> None:
        """Send `frames` after everything handed over before, raising `zmq.ZMQError` if zmq
        refuses them. Owner thread only (it waits for the socket if another thread holds it).

        ROUTER sockets are `router_mandatory`, so a reply to a peer that is not connected
        raises EHOSTUNREACH here instead of vanishing.
        """
        self._check_owner()
        try:
            with self._holding():
                self._run_outbox()
                send_message(self.socket, frames)
        finally:
            self._drain()

    def _send_now(self, frames: list[Any]) -> None:
        try:
            send_message(self.socket, frames)
        except zmq.ZMQError as e:  # e.g. EHOSTUNREACH for a vanished ROUTER peer
            logger.warning("Could not send on the %s channel: %s", self.name, e)

    def close(self) -> None:
        """Send what was handed over, then close the socket, letting queued messages go out for
        up to its linger. Owner thread only."""
        self._check_owner()
        self._on_message = None
        with self._holding():
            self._run_outbox()
            if not self.socket.closed:
                self.socket.close()
                logger.debug(
                    "Closed the %s socket in thread %s", self.name, threading.current_thread().name
                )

    def _check_owner(self) -> None:
        if threading.get_ident() != self._owner_thread:
            raise RuntimeError(
                f"the {self.name} socket belongs to another thread than "
                f"{threading.current_thread().name!r}"
            )

    def _check_holder(self) -> None:
        if self._holder != threading.get_ident():
            raise RuntimeError(
                f"the {self.name} socket is not held by {threading.current_thread().name!r}"
            )
