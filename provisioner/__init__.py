"""async-kernel provisioner: launches async-kernel processes from jupyter_client.

Runs in the Jupyter server process and imports only jupyter_client (and the wire contract in
`async_kernel.wire`), never the kernel runtime or the Caller machinery.

- `async_kernel_provisioner.AsyncKernelProvisioner`: the
  ``async-kernel-provisioner`` kernel provisioner.
- `async_kernel_provisioner.connect_control`: the one way to open a control connection to a
  kernel (the provisioner and the server extension both use it), giving a
- `async_kernel_provisioner.ControlAsker`: ask any kernel over its control channel.
- the errors, drawn as a hierarchy in `async_kernel_provisioner.errors`.
"""

from async_kernel_provisioner.async_provisioner import BACKENDS, AsyncKernelProvisioner
from async_kernel_provisioner.control import ControlAsker, connect_control
from async_kernel_provisioner.errors import (
    AsyncKernelError,
    GatewayError,
    GatewayRefused,
    InvalidBackend,
    KernelNotAlive,
    KernelReplyError,
    NoAnswerInTime,
    NotAnAsyncKernel,
    UnknownKernel,
)

__all__ = [
    "BACKENDS",
    "AsyncKernelError",
    "AsyncKernelProvisioner",
    "ControlAsker",
    "GatewayError",
    "GatewayRefused",
    "InvalidBackend",
    "KernelNotAlive",
    "KernelReplyError",
    "NoAnswerInTime",
    "NotAnAsyncKernel",
    "UnknownKernel",
    "connect_control",
]
