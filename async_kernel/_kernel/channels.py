"""zmq sockets owned by one Caller thread each, read inside that thread's event loop.

zmq sockets are not thread-safe, so every socket belongs to exactly one thread: the thread of the
Caller that serves it. Every thread hands frames (or a function to run with the socket) to the
channel's *outbox*, one FIFO for all threads, which the owner works off in order: at once when
the owner itself sends, else from a `Caller.call_direct` that the sending thread schedules. So a
message goes on the wire after everything any thread handed over before it (a stream the owner
flushes cannot overtake a status another thread published first). Reading uses the socket's
edge-triggered notification fd with `anyio.wait_readable`, so it works on asyncio and trio alike;
after every send the owner drains incoming messages too, because a send may consume the edge
that announced them.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
import zmq

from async_kernel.caller import Caller

__all__ = ["SocketChannel"]

logger = logging.getLogger("async_kernel.channels")

MessageHandler = Callable[[list[bytes]], None]


class SocketChannel:
    """One zmq socket, its owning caller, and (for request sockets) a handler for incoming frames.

    The handler runs in the owner's thread, synchronously; it must not block for long, and any
    exception it raises is logged and dropped so one bad message cannot stop the channel.
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
        # What threads handed over, in the order they did (deque appends are atomic).
        self._outbox: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._working_off = False  # the owner is inside _work_off (owner thread only)

    async def serve(self) -> None:
        """Read and dispatch messages until cancelled. Runs in the owner's loop."""
        fd: int = self.socket.getsockopt(zmq.FD)  # type: ignore[assignment]
        while not self.socket.closed:
            self._drain()
            await anyio.wait_readable(fd)

    def _drain(self) -> None:
        if self._draining or self._on_message is None:
            return
        self._draining = True
        try:
            while self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:  # type: ignore[operator,arg-type]
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
                try:
                    self._on_message(frames)
                except Exception:
                    logger.exception("Error handling a message on the %s channel", self.name)
        finally:
            self._draining = False

    def send(self, frames: list[Any]) -> None:
        """Send `frames` from any thread, after everything handed to this channel before."""
        self.run_in_owner(self._send_now, frames)

    def run_in_owner(self, func: Callable[..., Any], *args: Any) -> None:
        """Call `func(*args)` in the owner's thread, after everything handed over before it
        (by any thread): `func` may use the socket, e.g. with `send_now`. Any thread."""
        self._outbox.append((func, args))
        if threading.get_ident() == self._owner_thread:
            self._work_off()
        else:
            self.owner.call_direct(self._work_off)

    def _work_off(self) -> None:
        """Run the outbox in order. Owner thread; a call from inside one of its items returns
        at once (the outer call runs what was added, in order)."""
        if self._working_off:
            return
        self._working_off = True
        outbox = self._outbox
        try:
            while outbox:
                func, args = outbox.popleft()
                try:
                    func(*args)
                except Exception:
                    logger.exception("Error sending on the %s channel", self.name)
        finally:
            self._working_off = False

    def send_now(self, frames: list[Any]) -> None:
        """Send `frames` at once, ahead of the outbox. Owner thread only: for an outbox item
        that sends more than one message, so nothing queued comes between them."""
        self._check_owner()
        self._send_now(frames)

    @property
    def owner_thread_id(self) -> int | None:
        """The ident of the thread that owns the socket."""
        return self._owner_thread

    def send_or_raise(self, frames: list[Any]) -> None:
        """Send `frames` now, raising `zmq.ZMQError` if zmq refuses them. Owner thread only.

        ROUTER sockets are `router_mandatory`, so a reply to a peer that is not connected
        raises EHOSTUNREACH here instead of vanishing.
        """
        self._check_owner()
        try:
            self.socket.send_multipart(frames, copy=False)
        finally:
            self._drain()

    def _send_now(self, frames: list[Any]) -> None:
        try:
            self.socket.send_multipart(frames, copy=False)
        except zmq.ZMQError as e:  # e.g. EHOSTUNREACH for a vanished ROUTER peer
            logger.warning("Could not send on the %s channel: %s", self.name, e)
        self._drain()

    def close(self) -> None:
        """Close the socket, letting queued messages go out for up to its linger. Owner thread only."""
        self._check_owner()
        self._on_message = None
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
