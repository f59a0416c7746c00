"""The kernel's ports and its connection file.

Ports are picked by binding them: six in the port range (five kernel channels and the comm
port), each free at that moment. The comm port's socket stays bound (the listener serves it);
the five channel sockets are closed again so the kernel can bind them, the same short window
gateway_provisioners' own launcher leaves. The connection file is private (mode 0600, like
every Jupyter connection file) because it holds the key that signs the kernel's messages.

Synchronous, for the launcher's main thread.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import socket
import tempfile
import uuid
from typing import Any

from .errors import FAILED, LaunchError
from .options import PortRange

__all__ = ["CHANNEL_PORTS", "new_connection_info", "reserve_ports", "write_connection_file"]

CHANNEL_PORTS = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")
"""The connection-info fields of the five kernel channels, in the order ports are assigned."""


def reserve_ports(ip: str, port_range: PortRange, count: int) -> list[socket.socket]:
    """Bind `count` TCP sockets on `ip` to distinct free ports of `port_range` (any free port
    if it is unrestricted) and return them, still bound; the caller closes them.

    Raises:
        LaunchError: `ip` cannot be bound, or the range has fewer than `count` free ports.
    """
    bound: list[socket.socket] = []
    try:
        if port_range.unrestricted:
            candidates: list[int] = [0] * count
        else:
            candidates = list(range(port_range.lower, port_range.upper + 1))
            random.shuffle(candidates)
        for port in candidates:
            if len(bound) == count:
                break
            sock = _try_bind(ip, port)
            if sock is not None:
                bound.append(sock)
        if len(bound) < count:
            raise LaunchError(
                f"Only {len(bound)} of the {count} ports needed are free in the port range "
                f"{port_range} on {ip}: widen the range or free some ports.",
                FAILED,
            )
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    return bound


def _try_bind(ip: str, port: int) -> socket.socket | None:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((ip, port))
    except OSError as e:
        sock.close()
        if port != 0 and e.errno in (errno.EADDRINUSE, errno.EACCES):
            return None  # This port is taken (or privileged): try the next.
        raise LaunchError(f"Cannot listen on {ip}: {e.strerror or e}.", FAILED) from None
    return sock


def new_connection_info(ip: str, ports: list[int]) -> dict[str, Any]:
    """A connection info for a kernel listening on `ip`, with a fresh signing key; `ports`
    gives the five channel ports in [CHANNEL_PORTS][async_kernel._remote.connection.CHANNEL_PORTS]
    order."""
    info: dict[str, Any] = dict(zip(CHANNEL_PORTS, ports, strict=True))
    info.update(
        ip=ip,
        key=uuid.uuid4().hex,
        transport="tcp",
        signature_scheme="hmac-sha256",
        kernel_name="",
    )
    return info


def write_connection_file(info: dict[str, Any], kernel_id: str) -> str:
    """Write `info` to a new private (0600) file in the temporary directory; return its path.

    Raises:
        LaunchError: the file cannot be written.
    """
    safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", kernel_id)[:64]
    try:
        fd, path = tempfile.mkstemp(prefix=f"kernel-{safe_id}-", suffix=".json")
    except OSError as e:
        raise LaunchError(f"Cannot create the connection file: {e}.", FAILED) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise LaunchError(f"Cannot write the connection file {path}: {e}.", FAILED) from None
    return path
