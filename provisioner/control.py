"""Ask a kernel over its control channel: send a request, await the reply to *that* request.

[connect_control][async_kernel_provisioner.control.connect_control] is the one way the server
side opens a control connection to a kernel: the provisioner's ``caller_state()`` and the
server extension's snapshots both make theirs with it, from the kernel's connection info.

[ControlAsker][async_kernel_provisioner.control.ControlAsker] wraps one jupyter_client kernel
client (``AsyncKernelClient``, or anything with the same channel API) and only ever uses its
control channel: ``send(msg)`` and ``get_msg(timeout)``. It never touches raw sockets or process
ids, so it works wherever the client works.

Many requests may be in flight at once on one asker: a single reader task takes replies off the
channel and hands each to the request whose ``msg_id`` is its ``parent_header.msg_id``; replies
nobody waits for (late answers to timed-out requests, replies to other clients) are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from queue import Empty
from typing import Any, cast

import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo
from jupyter_core.utils import ensure_async

from async_kernel.wire import CALLER_STATE_REPLY, CALLER_STATE_REQUEST, CallerStateReply
from async_kernel_provisioner.errors import (
    AsyncKernelError,
    KernelNotAlive,
    KernelReplyError,
    NoAnswerInTime,
)

__all__ = [
    "DIGEST_HISTORY_SIZE",
    "ControlAsker",
    "KernelQuestions",
    "connect_control",
    "connection_fingerprint",
    "reply_content",
    "zmq_context_of",
]

log = logging.getLogger(__name__)

DIGEST_HISTORY_SIZE = 1024
"""How many received message signatures an asker's session keeps to refuse replayed replies."""

_READ_SLICE = 1.0
"""Seconds the reader waits for a message before checking whether anyone still waits."""


class KernelQuestions:
    """The questions the server side asks a kernel, built on one ``request`` (a subclass's):
    shared by [ControlAsker][async_kernel_provisioner.control.ControlAsker] (ZMQ) and the
    server extension's ``GatewayAsker`` (a gateway's websocket)."""

    async def request(
        self, msg_type: str, content: dict[str, Any] | None = None, *, timeout: float
    ) -> dict[str, Any]:
        """Send ``msg_type`` on the kernel's control channel and return the reply message."""
        raise NotImplementedError

    async def caller_state(self, *, timeout: float) -> CallerStateReply:
        """Ask for the kernel's Caller state and return the ``caller_state_reply`` content.

        Raises:
            AsyncKernelError: what the subclass's ``request`` raises (e.g. ``KernelNotAlive``,
                ``NoAnswerInTime``), and KernelReplyError when the reply is not a
                ``caller_state_reply`` with ``status: "ok"``.
        """
        reply = await self.request(CALLER_STATE_REQUEST, {}, timeout=timeout)
        return cast(CallerStateReply, reply_content(reply, CALLER_STATE_REPLY))

    async def kernel_info(self, *, timeout: float) -> dict[str, Any]:
        """Send ``kernel_info_request`` on control and return the ``kernel_info_reply`` content.

        Raises:
            AsyncKernelError: as for
                [caller_state][async_kernel_provisioner.control.KernelQuestions.caller_state],
                with ``kernel_info_reply`` the expected reply.
        """
        reply = await self.request("kernel_info_request", {}, timeout=timeout)
        return reply_content(reply, "kernel_info_reply")


class ControlAsker(KernelQuestions):
    """Requests and replies over one kernel client's control channel.

    Not thread-safe: use it from the one asyncio event loop that first sends a request (the
    Jupyter server's loop). The control channel is started on first use and closed by
    [close][async_kernel_provisioner.control.ControlAsker.close].

    Args:
        client: a jupyter_client kernel client with an asyncio control channel. The asker owns it
            from now on: ``close()`` stops its channels. Give it a session of its own (same key,
            own session id), so its socket identity never collides with another client's.
        is_alive: answers whether the kernel process is alive; asked before each request and
            while waiting, so a dead kernel raises
            [KernelNotAlive][async_kernel_provisioner.errors.KernelNotAlive] at once instead of
            a timeout.
        liveness_interval: seconds between ``is_alive`` checks while a request waits.
    """

    def __init__(
        self,
        client: Any,
        *,
        is_alive: Callable[[], Awaitable[bool]],
        liveness_interval: float = 0.25,
    ) -> None:
        self.client = client
        # The session remembers the signature of every message it receives, to refuse replays,
        # up to 65536 of them (several MiB) by default: bound it for a long-lived asker.
        session = client.session
        session.digest_history_size = min(session.digest_history_size, DIGEST_HISTORY_SIZE)
        self._is_alive = is_alive
        self._liveness_interval = liveness_interval
        self._started = False
        self._closed = False
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        """True once [close][async_kernel_provisioner.control.ControlAsker.close] was called."""
        return self._closed

    @contextlib.asynccontextmanager
    async def burst(self) -> AsyncIterator[None]:
        """A block of related requests. The ZMQ connection stays open anyway: nothing to do.

        (The gateway asker closes its websocket after each burst; callers use both alike.)
        """
        yield

    async def request(
        self, msg_type: str, content: dict[str, Any] | None = None, *, timeout: float
    ) -> dict[str, Any]:
        """Send ``msg_type`` on the control channel and return the reply message.

        Args:
            msg_type: the request's message type, e.g. ``"caller_state_request"``.
            content: the request's content (``{}`` when omitted).
            timeout: seconds to wait for the reply.

        Returns:
            The whole reply message (``header``, ``parent_header``, ``content``, ...).

        Raises:
            KernelNotAlive: the kernel process is not alive (checked before sending and while
                waiting).
            NoAnswerInTime: no reply within ``timeout`` while the process stayed alive.
            AsyncKernelError: the asker was closed.

        Cancellation: cancelling the awaiting task forgets the request; a late reply is dropped.
        """
        if self._closed:
            raise AsyncKernelError("the connection to the kernel was closed")
        if not await self._is_alive():
            raise KernelNotAlive("the kernel process is not alive")
        if not self._started:
            await ensure_async(
                self.client.start_channels(
                    shell=False, iopub=False, stdin=False, hb=False, control=True
                )
            )
            self._started = True
        loop = asyncio.get_running_loop()
        msg = self.client.session.msg(msg_type, content or {})
        msg_id: str = msg["header"]["msg_id"]
        reply: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._waiting[msg_id] = reply
        try:
            self.client.control_channel.send(msg)
            if self._reader is None or self._reader.done():
                self._reader = loop.create_task(self._read_replies())
            deadline = loop.time() + timeout
            while not reply.done():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                await asyncio.wait([reply], timeout=min(remaining, self._liveness_interval))
                if not reply.done() and not await self._is_alive():
                    raise KernelNotAlive(f"the kernel process died while waiting for {msg_type}")
            if reply.done():
                return reply.result()
            if not await self._is_alive():
                raise KernelNotAlive(f"the kernel process died while waiting for {msg_type}")
            raise NoAnswerInTime(f"the kernel did not answer {msg_type} within {timeout:g} s")
        finally:
            self._waiting.pop(msg_id, None)

    def close(self) -> None:
        """Stop the reader, fail requests still waiting, and stop the client's channels.

        Idempotent. Call it from the event loop the asker runs in.
        """
        if self._closed:
            return
        self._closed = True
        if self._reader is not None and not self._reader.done():
            with contextlib.suppress(RuntimeError):  # its event loop is already closed
                self._reader.cancel()
        self._fail_waiting(AsyncKernelError("the connection to the kernel was closed"))
        if self._started:
            with contextlib.suppress(Exception):
                self.client.stop_channels()

    async def _read_replies(self) -> None:
        """Route replies to waiting requests by parent msg_id while any request waits."""
        channel = self.client.control_channel
        while self._waiting and not self._closed:
            try:
                msg = await channel.get_msg(timeout=_READ_SLICE)
            except Empty:
                continue
            except asyncio.CancelledError:
                raise
            except ValueError as exc:  # bad signature or malformed frames: drop that message
                log.warning("dropped a malformed control reply: %s", exc)
                continue
            except Exception as exc:  # the channel is unusable (closed socket, ...)
                self._fail_waiting(AsyncKernelError(f"the control channel failed: {exc!r}"))
                return
            parent_id = (msg.get("parent_header") or {}).get("msg_id")
            waiter = self._waiting.get(parent_id) if isinstance(parent_id, str) else None
            if waiter is not None and not waiter.done():
                waiter.set_result(msg)
            else:
                log.debug("dropped a control reply nobody waits for: %s", msg.get("msg_type"))

    def _fail_waiting(self, exc: BaseException) -> None:
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(exc)


def connect_control(
    connection_info: Mapping[str, Any],
    *,
    is_alive: Callable[[], Awaitable[bool]],
    context: zmq.asyncio.Context | None = None,
    liveness_interval: float = 0.25,
) -> ControlAsker:
    """A [ControlAsker][async_kernel_provisioner.control.ControlAsker] for the kernel that
    `connection_info` describes: the one way the server side opens a control connection.

    The connection is a new ``AsyncKernelClient`` with a session of its own (the kernel's key
    and signature scheme, its own session id, so its socket identity never collides with
    another client's: a ZMQ ROUTER drops a second peer with the same identity). Nothing is
    connected until the asker's first request.

    Args:
        connection_info: the kernel's connection info (``transport``, ``ip``, the ports,
            ``key``, ``signature_scheme``), as a kernel manager or provisioner holds it.
        is_alive: answers whether the kernel process is alive (see ControlAsker).
        context: the asyncio zmq context to connect in; by default the process-wide one, so
            that there is no context (and IO thread) per kernel.
        liveness_interval: seconds between ``is_alive`` checks while a request waits.
    """
    client = AsyncKernelClient(context=context or zmq.asyncio.Context.instance())
    client.load_connection_info(cast(KernelConnectionInfo, dict(connection_info)))
    return ControlAsker(client, is_alive=is_alive, liveness_interval=liveness_interval)


def connection_fingerprint(connection_info: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A hashable summary of `connection_info`: equal while the kernel keeps its ports and key,
    so an asker kept for a kernel can tell when the kernel restarted elsewhere."""
    return tuple(sorted((str(k), repr(v)) for k, v in connection_info.items()))


def zmq_context_of(owner: object) -> zmq.asyncio.Context | None:
    """The open asyncio zmq context of a kernel manager (or a provisioner's parent), if any."""
    context = getattr(owner, "context", None)
    if isinstance(context, zmq.asyncio.Context) and not context.closed:
        return context
    return None


def reply_content(reply: dict[str, Any], expected_type: str) -> dict[str, Any]:
    """The content of `reply` if it is an ``expected_type`` with ``status: "ok"``.

    Raises:
        KernelReplyError: another message type, no content, or an error status.
    """
    msg_type = reply.get("header", {}).get("msg_type") or reply.get("msg_type")
    content = reply.get("content")
    if msg_type != expected_type or not isinstance(content, dict):
        raise KernelReplyError(f"expected {expected_type}, the kernel sent {msg_type}")
    if content.get("status", "ok") != "ok":
        detail = content.get("evalue") or content.get("ename") or content.get("status")
        raise KernelReplyError(f"the kernel answered {expected_type} with an error: {detail}")
    return content
