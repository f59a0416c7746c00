"""The wire contract shared by the kernel and the server side.

Message names and field names that cross the process boundary live here and nowhere else, so the
kernel (which answers) and the provisioner / server extension (which ask) cannot drift apart.
This module imports nothing from the kernel runtime: the server side may import it freely.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CALLER_STATE_FEATURE",
    "CALLER_STATE_REPLY",
    "CALLER_STATE_REQUEST",
    "CALLER_STATE_VERSION",
    "PROTOCOL_VERSION",
    "USAGE_REPLY",
    "USAGE_REQUEST",
]

CALLER_STATE_REQUEST: Final = "caller_state_request"
"""Control-channel request for a snapshot of the kernel's callers (content ``{}``)."""

CALLER_STATE_REPLY: Final = "caller_state_reply"
"""The reply to [CALLER_STATE_REQUEST][async_kernel.wire.CALLER_STATE_REQUEST]."""

CALLER_STATE_VERSION: Final = 1
"""Version of the ``caller_state_reply`` content; bumped only when a field changes meaning."""

CALLER_STATE_FEATURE: Final = "caller_state"
"""Listed in ``kernel_info_reply.supported_features`` by kernels that answer caller_state."""

USAGE_REQUEST: Final = "usage_request"
"""ipykernel-compatible resource usage request (control channel)."""

USAGE_REPLY: Final = "usage_reply"
"""The reply to [USAGE_REQUEST][async_kernel.wire.USAGE_REQUEST]."""

PROTOCOL_VERSION: Final = "5.4"
"""The Jupyter messaging protocol version this kernel implements.

Sent in ``kernel_info_reply.protocol_version`` and in every message header. It is the kernel's
own, not the version of the installed jupyter_client (which may know a newer protocol than this
kernel speaks).
"""
