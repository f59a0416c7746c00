"""The kernel's own connection to debugpy's adapter: Debug Adapter Protocol over loopback TCP.

Each DAP message is a JSON object after a `Content-Length: N` header and a blank line. The
kernel is the adapter's one client: it forwards the frontends' requests (which arrive in
`debug_request`s) and requests of its own, so it gives every request it sends a sequence number
of this connection (`seq`) and hands back each response with the `request_seq` the frontend
used. Events go to the `on_event` callback, in the order they arrive.

One [DapConnection][async_kernel._kernel.debugger.dap.DapConnection] lives in one event loop
(the `Debugger` caller's): `run()` reads in a task of that loop, and `request`/`forward` are
called from other tasks of it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import orjson
from anyio.streams.buffered import BufferedByteReceiveStream

__all__ = ["DapClosedError", "DapConnection", "decode_headers", "encode"]

logger = logging.getLogger("async_kernel.debugger")

MAX_HEADER_BYTES = 4096
"""The most a message's header may take; more means the stream is not DAP."""

Event = Callable[[dict[str, Any]], None]


class DapClosedError(ConnectionError):
    """The adapter's connection closed (or broke) before the response came."""


def encode(message: dict[str, Any]) -> bytes:
    """A DAP message's bytes on the wire."""
    body = orjson.dumps(message)
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def decode_headers(raw: bytes) -> int:
    """The body length that a message's header block (without its blank line) announces.

    Raises:
        ValueError: there is no valid `Content-Length`.
    """
    for line in raw.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
            if length < 0:
                raise ValueError(f"negative Content-Length {length}")
            return length
    raise ValueError(f"no Content-Length in DAP header {raw[:200]!r}")


class _Waiter:
    __slots__ = ("done", "response")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.response: dict[str, Any] | None = None


class DapConnection:
    """A DAP client connection. One event loop; not thread-safe."""

    def __init__(self, stream: anyio.abc.ByteStream, on_event: Event) -> None:
        self._stream = stream
        self._receive = BufferedByteReceiveStream(stream)
        self._on_event = on_event
        self._seq = itertools.count(1)
        self._waiters: dict[int, _Waiter] = {}
        self._send_lock = anyio.Lock()
        self._closed = False

    @classmethod
    async def connect(cls, host: str, port: int, on_event: Event) -> DapConnection:
        """Connect to the adapter listening on `host:port`."""
        stream = await anyio.connect_tcp(host, port)
        return cls(stream, on_event)

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(self) -> None:
        """Read messages until the connection closes: responses wake their requests, events go
        to `on_event`. Then every request still waiting fails with DapClosedError."""
        try:
            while True:
                try:
                    header = await self._receive.receive_until(b"\r\n\r\n", MAX_HEADER_BYTES)
                    body = await self._receive.receive_exactly(decode_headers(header))
                except (
                    anyio.EndOfStream,
                    anyio.IncompleteRead,
                    anyio.BrokenResourceError,
                    anyio.ClosedResourceError,
                ):
                    return
                try:
                    message = orjson.loads(body)
                except orjson.JSONDecodeError:
                    logger.warning("Dropped a DAP message that is not JSON: %r", body[:200])
                    continue
                if not isinstance(message, dict):
                    logger.warning("Dropped a DAP message that is not an object: %r", body[:200])
                    continue
                self._dispatch(message)
        except ValueError as e:
            logger.error("The debug adapter sent something that is not DAP: %s", e)
        finally:
            self._closed = True
            for waiter in self._waiters.values():
                waiter.done.set()
            self._waiters.clear()
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "response":
            waiter = self._waiters.pop(message.get("request_seq", -1), None)
            if waiter is None:
                logger.warning("Dropped a DAP response no request waits for: %r", message)
                return
            waiter.response = message
            waiter.done.set()
        elif kind == "event":
            try:
                self._on_event(message)
            except Exception:
                logger.exception("Error handling the debug event %r", message.get("event"))
        else:
            logger.warning("Dropped a DAP %r message from the adapter", kind)

    async def send(self, message: dict[str, Any]) -> _Waiter:
        """Send a request (its `seq` replaced by one of this connection's) and return what to
        `wait()` on for its response. Sending comes first, so requests sent one after the other
        reach the adapter in that order."""
        if self._closed:
            raise DapClosedError("the debug adapter's connection is closed")
        seq = next(self._seq)
        waiter = _Waiter()
        self._waiters[seq] = waiter
        data = encode({**message, "type": "request", "seq": seq})
        try:
            async with self._send_lock:
                await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as e:
            self._waiters.pop(seq, None)
            raise DapClosedError(f"could not send to the debug adapter: {e!r}") from e
        return waiter

    @staticmethod
    async def wait(waiter: _Waiter) -> dict[str, Any]:
        """The response `send` promised. Cancellation abandons it (the response is dropped).

        Raises:
            DapClosedError: the connection closed first.
        """
        await waiter.done.wait()
        if waiter.response is None:
            raise DapClosedError("the debug adapter's connection closed before it answered")
        return waiter.response

    async def request(
        self, command: str, arguments: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send a request of the kernel's own and return its response."""
        message: dict[str, Any] = {"command": command}
        if arguments is not None:
            message["arguments"] = arguments
        return await self.wait(await self.send(message))

    async def forward(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send a frontend's request and return the response, as an answer to its own `seq`."""
        response = await self.wait(await self.send(request))
        return {**response, "request_seq": request.get("seq", 0)}

    async def aclose(self) -> None:
        """Close the connection; `run()` then ends and waiting requests fail."""
        self._closed = True
        await self._stream.aclose()
