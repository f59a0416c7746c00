"""Errors raised when launching an async kernel or asking one for its state.

The hierarchy, each error saying what the caller can do about it::

    AsyncKernelError                 anything below; catch this to handle them all
    ├── InvalidBackend               bad ``backend`` config (also a traitlets TraitError):
    │                                fix the kernelspec / config, then start the kernel again
    ├── UnknownKernel                no running kernel has this id: list kernels and pick one
    ├── NotAnAsyncKernel             the kernel runs but does not speak caller_state
    │                                (e.g. ipykernel): nothing to ask, do not retry
    ├── KernelNotAlive               the kernel process is gone: restart or start a kernel
    ├── NoAnswerInTime               the kernel lives but did not answer before the timeout
    │                                (stopped, overloaded, or its control thread is stuck):
    │                                retry later or with a longer timeout
    ├── GatewayError                 the kernel runs behind a Kernel / Enterprise Gateway that
    │   │                            could not be reached or failed the request: check the
    │   │                            gateway and ``GatewayClient.url``
    │   └── GatewayRefused           the gateway refused our credentials (401 / 403): fix
    │                                ``GatewayClient.auth_token`` / ``headers``
    └── KernelReplyError             the kernel answered, but with an error or a reply of the
                                     wrong type: a kernel bug, report it

The server extension maps these to HTTP statuses in exactly one place
(`async_kernel_server.handlers`): 404, 409, 503, 504, 502 (both gateway errors) and 502
respectively; the body's ``reason`` (the class name) tells the 502s apart.
"""

from __future__ import annotations

from traitlets import TraitError

__all__ = [
    "AsyncKernelError",
    "GatewayError",
    "GatewayRefused",
    "InvalidBackend",
    "KernelNotAlive",
    "KernelReplyError",
    "NoAnswerInTime",
    "NotAnAsyncKernel",
    "UnknownKernel",
]


class AsyncKernelError(Exception):
    """Base class of every error raised by the provisioner and the server extension."""


class InvalidBackend(AsyncKernelError, TraitError):
    """The provisioner's ``backend`` is not one of the backends async-kernel runs on.

    Raised when the provisioner is created (that is, when the kernel is being started), so a bad
    kernelspec never launches a process. Fix ``metadata.kernel_provisioner.config.backend`` in the
    kernelspec (or ``c.AsyncKernelProvisioner.backend``) and start the kernel again.
    """


class UnknownKernel(AsyncKernelError, LookupError):
    """No running kernel has this id (it never existed, or it was shut down)."""


class NotAnAsyncKernel(AsyncKernelError):
    """The kernel is running but is not an async kernel: it does not answer caller_state.

    Decided from its kernelspec / provisioner or from ``kernel_info_reply.supported_features``,
    never by waiting for a timeout. Retrying will not help.
    """


class KernelNotAlive(AsyncKernelError):
    """The kernel process is not running (it died, was killed, or is being restarted)."""


class NoAnswerInTime(AsyncKernelError):
    """The kernel is alive but did not answer within the timeout.

    Usual causes: the process is stopped (SIGSTOP, a debugger), the machine is overloaded, or
    the kernel's control thread is stuck. A late reply is ignored. Retry, or raise the timeout.
    """


class KernelReplyError(AsyncKernelError):
    """The kernel answered, but with ``status`` other than ``"ok"`` or an unexpected reply type."""


class GatewayError(AsyncKernelError):
    """The kernel runs behind a gateway, and the gateway failed us.

    It could not be reached, answered the kernel's websocket with an unexpected HTTP status,
    or closed the websocket before the reply came. Check that the gateway runs and
    ``GatewayClient.url`` / ``ws_url``; retrying later may help.
    """


class GatewayRefused(GatewayError):
    """The gateway answered 401 or 403: it does not accept the server's credentials.

    Set ``GatewayClient.auth_token`` (or ``headers``) to what the gateway expects
    (Kernel Gateway: ``KernelGatewayApp.auth_token``). Retrying will not help.
    """
