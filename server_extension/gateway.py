"""Ask a kernel that runs behind a Kernel Gateway or Enterprise Gateway over its websocket.

When Jupyter Server runs with ``--gateway-url``, its kernels live at the gateway and the only
way to reach them is the gateway's kernel websocket
(``{ws_url}{kernels_endpoint}/{kernel_id}/channels``). jupyter_server's own
``GatewayKernelClient`` cannot carry a control request there: it sends messages without a
``channel`` field (the gateway then routes them to shell), its reply router dies on the first
iopub message when only control was started, and its websocket carries no gateway auth.
[GatewayAsker][async_kernel_server.gateway.GatewayAsker] is the small client of our own that
does, with the same request API as `async_kernel_provisioner.ControlAsker`.

What it takes from jupyter_server's gateway configuration (``GatewayClient``): ``ws_url``,
``kernels_endpoint``, and every connection argument its REST calls use
(``load_connection_args()``: headers with the gateway token, TLS settings, basic auth, cookies).

Why the websocket is closed after each burst of requests: a gateway counts an open websocket
as a client connection, so a held one would keep ``cull_connected=False`` culling from ever
culling the polled kernel, and the kernel's ``connections`` would lie. The websocket reuses one
``session_id`` per asker, so what the gateway buffers for it between bursts (when no other
client is connected) is handed back, and dropped, on the next connect instead of piling up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any, cast
from urllib.parse import urlencode

from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from jupyter_server.gateway.gateway_client import GatewayClient
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
from jupyter_server.utils import url_escape, url_path_join
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClientConnection, websocket_connect

from async_kernel.wire import (
    CALLER_STATE_REPLY,
    CALLER_STATE_REQUEST,
    USAGE_REPLY,
    USAGE_REQUEST,
)
from async_kernel_provisioner.control import KernelQuestions
from async_kernel_provisioner.errors import (
    AsyncKernelError,
    GatewayError,
    GatewayRefused,
    NoAnswerInTime,
    UnknownKernel,
)

__all__ = ["GATEWAY_UNTRACKED_MESSAGE_TYPES", "GatewayAsker", "channels_url"]

log = logging.getLogger(__name__)

GATEWAY_UNTRACKED_MESSAGE_TYPES: tuple[str, ...] = (
    *cast(list[str], MappingKernelManager.class_traits()["untracked_message_types"].default()),
    CALLER_STATE_REQUEST,
    CALLER_STATE_REPLY,
    USAGE_REQUEST,
    USAGE_REPLY,
)
"""``c.MappingKernelManager.untracked_message_types`` for a Kernel Gateway whose kernels are
polled: jupyter_server's defaults plus the state requests, so snapshots (and
jupyter-resource-usage's panel) move neither the gateway's ``last_activity`` nor its
``execution_state``. The trait replaces the default list, hence the defaults are included."""

CHANNEL = "control"
"""The channel every request is tagged with: caller_state and kernel_info are answered there
without waiting behind a running cell."""


def channels_url(gateway: GatewayClient, kernel_id: str, session_id: str) -> str:
    """The gateway's websocket URL for `kernel_id`'s channels, as jupyter_server builds it."""
    base = url_path_join(
        gateway.ws_url or "", gateway.kernels_endpoint, url_escape(kernel_id), "channels"
    )
    return f"{base}?{urlencode({'session_id': session_id})}"


class GatewayAsker(KernelQuestions):
    """Requests and replies over a gateway's kernel websocket, on the control channel.

    Not thread-safe: use it from the Jupyter server's event loop. Requests that overlap share
    one websocket; it is opened by the first and closed when the last one (or the last
    [burst][async_kernel_server.gateway.GatewayAsker.burst]) ends. A failed connect is never
    kept: the next request connects afresh. Waiting never polls: the reader task sleeps in
    the websocket until a frame arrives.

    Args:
        kernel_id: the kernel's id at the gateway (the same id the server uses).
        gateway: the gateway configuration; by default ``GatewayClient.instance()``, the one
            jupyter_server's gateway kernel manager uses.
    """

    def __init__(self, kernel_id: str, *, gateway: GatewayClient | None = None) -> None:
        self.kernel_id = kernel_id
        self._gateway = gateway
        # Only builds message headers: the gateway signs what it forwards with the kernel's key.
        self._session = Session(key=b"", username="async-kernel-server")
        self._closed = False
        self._users = 0
        self._connecting: asyncio.Task[WebSocketClientConnection] | None = None
        self._websocket: WebSocketClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    @property
    def closed(self) -> bool:
        """True once [close][async_kernel_server.gateway.GatewayAsker.close] was called."""
        return self._closed

    @contextlib.asynccontextmanager
    async def burst(self) -> AsyncIterator[None]:
        """Keep one websocket open across the requests made inside, then close it.

        Cancellation: leaving the block by any exception closes the websocket like a normal exit
        (when no other request still uses it).
        """
        self._users += 1
        try:
            yield
        finally:
            self._release()

    async def request(
        self, msg_type: str, content: dict[str, Any] | None = None, *, timeout: float
    ) -> dict[str, Any]:
        """Send ``msg_type`` on the kernel's control channel through the gateway; return the reply.

        Args:
            msg_type: the request's message type, e.g. ``"caller_state_request"``.
            content: the request's content (``{}`` when omitted).
            timeout: seconds for the whole call, connecting included.

        Returns:
            The whole reply message (``header``, ``parent_header``, ``content``, ...).

        Raises:
            UnknownKernel: the gateway has no kernel with this id (404 on the websocket).
            GatewayRefused: the gateway refused our credentials (401 or 403).
            GatewayError: the gateway could not be reached, answered the websocket with another
                error, or closed it before the reply came.
            NoAnswerInTime: no reply (or no websocket) within ``timeout``.
            AsyncKernelError: the asker was closed.

        Cancellation: cancelling the awaiting task forgets the request; a late reply is dropped.
        """
        if self._closed:
            raise AsyncKernelError("the connection to the kernel was closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._users += 1
        msg_id: str | None = None
        try:
            websocket = await self._connect(timeout)
            msg = self._session.msg(msg_type, content or {})
            msg_id = msg["header"]["msg_id"]
            reply: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._waiting[msg_id] = reply
            msg["channel"] = CHANNEL
            try:
                await websocket.write_message(json.dumps(msg, default=json_default))
            except Exception as exc:  # closed under us: the websocket is gone
                raise GatewayError(f"the gateway closed the kernel websocket: {exc!r}") from exc
            remaining = deadline - loop.time()
            done, _ = await asyncio.wait([reply], timeout=max(remaining, 0.0))
            if not done:
                raise NoAnswerInTime(
                    f"the kernel did not answer {msg_type} through the gateway within {timeout:g} s"
                )
            return reply.result()
        finally:
            if msg_id is not None:
                self._waiting.pop(msg_id, None)
            self._release()

    def close(self) -> None:
        """Close the websocket, fail requests still waiting; later requests raise. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._connecting is not None and not self._connecting.done():
            with contextlib.suppress(RuntimeError):  # its event loop is already closed
                self._connecting.cancel()
        self._disconnect(AsyncKernelError("the connection to the kernel was closed"))

    async def _connect(self, timeout: float) -> WebSocketClientConnection:
        """The open websocket, connecting (once, shared by concurrent requests) if needed."""
        if self._websocket is not None:
            return self._websocket
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._open(timeout))
            self._connecting.add_done_callback(_retrieve_exception)
        try:
            # shield: one request timing out must not cancel the connect others wait for.
            return await asyncio.wait_for(asyncio.shield(self._connecting), timeout)
        except TimeoutError:
            raise NoAnswerInTime(
                f"the gateway did not open the websocket of kernel {self.kernel_id} within "
                f"{timeout:g} s (a kernel that does not answer kernel_info holds it)"
            ) from None

    async def _open(self, timeout: float) -> WebSocketClientConnection:
        """Connect; install the websocket and its reader unless nobody needs it any more."""
        gateway = self._gateway or GatewayClient.instance()
        url = channels_url(gateway, self.kernel_id, self._session.session)
        args: dict[str, Any] = cast(Any, gateway).load_connection_args()
        # Longer than the callers' own wait, so that a slow gateway reads as NoAnswerInTime.
        args["connect_timeout"] = args["request_timeout"] = timeout + 1.0
        try:
            websocket = await websocket_connect(HTTPRequest(url, **args))
        except HTTPClientError as exc:
            raise _http_error(exc, self.kernel_id, gateway) from exc
        except (OSError, StreamClosedError, ssl.SSLError) as exc:
            raise GatewayError(
                f"cannot reach the gateway at {gateway.ws_url}: {exc!r}. Check "
                "GatewayClient.url / ws_url and that the gateway runs"
            ) from exc
        if self._closed or self._users == 0:  # everyone left (timed out) while we connected
            websocket.close()
            raise AsyncKernelError("the connection to the kernel was closed")
        self._websocket = websocket
        self._reader = asyncio.get_running_loop().create_task(self._read(websocket))
        return websocket

    async def _read(self, websocket: WebSocketClientConnection) -> None:
        """Hand each reply to the request whose msg_id is its parent's; drop the rest."""
        while True:
            frame = await websocket.read_message()
            if frame is None:  # closed, by us or by the gateway
                if self._websocket is websocket:
                    self._disconnect(GatewayError("the gateway closed the kernel websocket"))
                return
            if not isinstance(frame, str):
                continue  # binary frames carry buffers; no reply we wait for has any
            try:
                msg = json.loads(frame)
            except ValueError:
                log.warning("dropped a malformed frame from the gateway websocket")
                continue
            if not isinstance(msg, dict) or msg.get("channel") != CHANNEL:
                continue  # iopub status, replayed buffers, other channels' traffic
            parent = msg.get("parent_header")
            parent_id = parent.get("msg_id") if isinstance(parent, dict) else None
            waiter = self._waiting.get(parent_id) if isinstance(parent_id, str) else None
            if waiter is not None and not waiter.done():
                waiter.set_result(msg)

    def _release(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._disconnect(None)

    def _disconnect(self, error: AsyncKernelError | None) -> None:
        """Close the websocket (if open) and fail whatever still waits on it with `error`."""
        websocket, self._websocket = self._websocket, None
        reader, self._reader = self._reader, None
        if websocket is not None:
            websocket.close()
        if reader is not None and not reader.done():
            with contextlib.suppress(RuntimeError):  # its event loop is already closed
                reader.cancel()
        if error is not None:
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(error)


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    """Mark a finished connect's exception as seen: the requests that waited got it already."""
    if not task.cancelled():
        task.exception()


def _http_error(exc: HTTPClientError, kernel_id: str, gateway: GatewayClient) -> AsyncKernelError:
    """What a failed websocket upgrade at the gateway means for the caller."""
    if exc.code == 404:
        return UnknownKernel(f"the gateway has no kernel with id {kernel_id!r}")
    if exc.code in (401, 403):
        return GatewayRefused(
            f"the gateway at {gateway.url} refused the request ({exc.code}): check "
            "GatewayClient.auth_token / headers"
        )
    if exc.code == 599:  # tornado's own code for a timeout or a connection failure
        return GatewayError(f"cannot reach the gateway at {gateway.ws_url}: {exc.message}")
    return GatewayError(f"the gateway answered the kernel websocket with {exc.code}: {exc}")
