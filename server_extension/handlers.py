"""REST handlers: ``GET {base_url}api/async-kernel/kernels[/{kernel_id}]``.

Thin: authenticate, authorize against the ``kernels`` resource (as jupyter_server's own kernel
handlers do, so tokens, JupyterHub scopes and custom authorizers apply unchanged), delegate to
`async_kernel_server.snapshots.KernelSnapshots`, write JSON. Errors from the seam become HTTP
errors in exactly one place, `http_error`.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_client.jsonutil import json_default
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from async_kernel_provisioner.errors import (
    AsyncKernelError,
    GatewayError,
    KernelNotAlive,
    NoAnswerInTime,
    NotAnAsyncKernel,
    UnknownKernel,
)
from async_kernel_server.snapshots import KernelSnapshots

__all__ = [
    "AUTH_RESOURCE",
    "HTTP_STATUS",
    "KernelListHandler",
    "KernelSnapshotHandler",
    "default_handlers",
    "http_error",
]

AUTH_RESOURCE = "kernels"
"""The authorization resource: reading these endpoints needs ``read`` on ``kernels``."""

HTTP_STATUS: dict[type[AsyncKernelError], int] = {
    UnknownKernel: 404,
    NotAnAsyncKernel: 409,
    KernelNotAlive: 503,
    NoAnswerInTime: 504,
    GatewayError: 502,
}
"""HTTP status per error (`GatewayRefused` is a `GatewayError`); any other `AsyncKernelError`
(a bad reply from the kernel) is 502 too. The body's ``reason`` names the error."""


def http_error(exc: AsyncKernelError) -> web.HTTPError:
    """The one mapping from the seam's errors to HTTP.

    The JSON body is jupyter_server's ``{"message": ..., "reason": ...}``: ``message`` is the
    error's text, ``reason`` the error's class name (``"NoAnswerInTime"``, ...), stable for
    clients to switch on.
    """
    status = next((s for cls, s in HTTP_STATUS.items() if isinstance(exc, cls)), 502)
    return web.HTTPError(status, str(exc), reason=type(exc).__name__)


class AsyncKernelAPIHandler(APIHandler):
    """Base of the extension's handlers: the ``kernels`` auth resource and the seam.

    Reading state is never user activity: the handlers opt out of jupyter_server's activity
    tracking (`_track_activity`), so a dashboard polling them does not move the server's
    ``last_activity`` (``/api/status``) and keeps no idle server from being culled.
    """

    auth_resource = AUTH_RESOURCE
    _track_activity = False

    def initialize(self, snapshots: KernelSnapshots) -> None:
        """Tornado hook: receive the shared ``KernelSnapshots`` from the extension app."""
        self.snapshots = snapshots

    def write_json(self, data: Any) -> None:
        """Finish the request with ``data`` as JSON."""
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=json_default))


class KernelListHandler(AsyncKernelAPIHandler):
    """``GET {base_url}api/async-kernel/kernels``: one summary row per running kernel."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List the kernels; a kernel that fails gets an ``error`` row, never an HTTP error."""
        self.write_json({"kernels": await self.snapshots.rows()})


class KernelSnapshotHandler(AsyncKernelAPIHandler):
    """``GET {base_url}api/async-kernel/kernels/{kernel_id}``: one kernel's Caller state."""

    @web.authenticated
    @authorized
    async def get(self, kernel_id: str) -> None:
        """The kernel's caller_state_reply content plus kernel identity and ``fetched_at``."""
        try:
            state = await self.snapshots.snapshot(kernel_id)
        except AsyncKernelError as exc:
            raise http_error(exc) from exc
        self.write_json(state)


default_handlers: list[tuple[str, type[AsyncKernelAPIHandler]]] = [
    (r"/api/async-kernel/kernels/?", KernelListHandler),
    (r"/api/async-kernel/kernels/(?P<kernel_id>[^/]+)/?", KernelSnapshotHandler),
]
"""URL patterns (the server prepends its base_url) and their handlers."""
