"""Requests from the launcher to its kernel on the kernel's control channel.

The launcher turns the provisioner's SIGINT into an `interrupt_request` and its shutdown
request into a `shutdown_request`, both sent here as any Jupyter client would, signed with the
kernel's key: the kernel's SIGINT handler only interrupts a cell that an interrupt request has
aimed at (see `async_kernel._kernel.interrupts`), and a shutdown request is the kernel's clean
way out. This keeps message-mode interrupts the only interrupt mechanism the kernel needs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import zmq

from async_kernel._kernel.messaging import WireSession

__all__ = ["KernelControl"]

logger = logging.getLogger("async_kernel.launch")


class KernelControl:
    """A control-channel client of one kernel (thread-safe: one request at a time, under a
    lock; the socket is made on first use and used only under that lock).

    Args:
        connection_info: The kernel's connection info (its control port, ip and key). A kernel
            listening on every interface (`0.0.0.0`) is reached on loopback.
    """

    def __init__(self, connection_info: dict[str, Any]) -> None:
        ip = str(connection_info.get("ip", "127.0.0.1"))
        if ip in ("0.0.0.0", ""):
            ip = "127.0.0.1"
        elif ip == "::":
            ip = "::1"
        host = f"[{ip}]" if ":" in ip else ip
        self._address = f"tcp://{host}:{connection_info['control_port']}"
        key = connection_info.get("key", "")
        self._session = WireSession(
            key=key.encode() if isinstance(key, str) else key,
            signature_scheme=connection_info.get("signature_scheme", "hmac-sha256"),
            username="async-kernel-launcher",
        )
        self._lock = threading.Lock()
        self._context: zmq.Context[Any] | None = None
        self._socket: zmq.Socket[Any] | None = None
        self._closed = False

    def request(
        self, msg_type: str, content: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> dict[str, Any] | None:
        """Send `msg_type` and return its reply's content, or None if none came within
        `timeout` seconds (or the client is closed). Blocks; any thread.

        Raises:
            zmq.ZMQError: the request could not be sent.
        """
        with self._lock:
            if self._closed:
                return None
            sock = self._connected()
            msg_id = self._send(sock, msg_type, content)
            deadline = time.monotonic() + timeout
            while (remaining := deadline - time.monotonic()) > 0:
                if not sock.poll(max(1, int(remaining * 1000))):
                    break
                try:
                    _, frames = self._session.feed_identities(sock.recv_multipart(copy=True))
                    reply = self._session.deserialize(frames)
                except Exception as e:  # A bad signature or frames: not our reply.
                    logger.warning("Dropped a malformed message on the control channel: %r", e)
                    continue
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    reply_content: dict[str, Any] = reply["content"]
                    return reply_content
            return None

    def send(self, msg_type: str, content: dict[str, Any] | None = None) -> None:
        """Send `msg_type` without waiting for its reply (it is delivered once the kernel's
        control socket is reachable, while the client stays open). Any thread; nothing is sent
        once closed.

        Raises:
            zmq.ZMQError: the request could not be queued.
        """
        with self._lock:
            if not self._closed:
                self._send(self._connected(), msg_type, content)

    def close(self) -> None:
        """Close the socket and its context; later requests return None. Any thread."""
        with self._lock:
            self._closed = True
            if self._socket is not None:
                self._socket.close(linger=0)
                self._socket = None
            if self._context is not None:
                self._context.term()
                self._context = None

    def _send(self, sock: zmq.Socket[Any], msg_type: str, content: dict[str, Any] | None) -> str:
        msg = self._session.msg(msg_type, content or {})
        sock.send_multipart(self._session.serialize(msg))
        return str(msg["header"]["msg_id"])

    def _connected(self) -> zmq.Socket[Any]:
        if self._socket is None:
            self._context = zmq.Context()
            sock = self._context.socket(zmq.DEALER)
            sock.linger = 0
            sock.connect(self._address)
            self._socket = sock
        return self._socket
