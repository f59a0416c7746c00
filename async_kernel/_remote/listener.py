"""The comm-port listener: the provisioner's signal and shutdown requests, on a TCP socket.

gateway_provisioners' `RemoteProvisionerBase` connects to the `comm_port` of the connection
info and sends one JSON object per connection, then closes its side:
- `{"signum": N}`: deliver signal N (0 is a liveness poll; the provisioner only looks at
  whether the connection is accepted);
- `{"shutdown": 1}`: stop the kernel and the listener.
No reply is sent. A request that is not JSON, not an object, too large or too slow is logged
and dropped; the listener goes on serving.

The listener runs in its own thread and runs no user code: it only hands requests to the
[KernelProcess][async_kernel._remote.supervisor.KernelProcess]. Every exception while serving
a request is caught and logged; the thread ends only on `close()` or after a shutdown request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
import threading
from typing import Any

from .supervisor import KernelProcess

__all__ = ["MAX_REQUEST_BYTES", "REQUEST_TIMEOUT", "CommListener"]

logger = logging.getLogger("async_kernel.launch")

MAX_REQUEST_BYTES = 64 * 1024
"""A request larger than this is dropped (a real one is a few bytes)."""

REQUEST_TIMEOUT = 10.0
"""Seconds one connection may take to send its request and close its side."""


class CommListener:
    """Serve the provisioner's requests on `sock` (bound and listening) for `kernel`.

    `start()` and `close()` may be called from any thread; the socket is used only by the
    listener's thread once started, and closed by it when it ends.
    """

    def __init__(self, sock: socket.socket, kernel: KernelProcess) -> None:
        self._sock = sock
        self._kernel = kernel
        self._wake_read, self._wake_write = socket.socketpair()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="CommListener", daemon=True)

    @property
    def port(self) -> int:
        """The comm port."""
        port: int = self._sock.getsockname()[1]
        return port

    def start(self) -> None:
        """Start serving in the listener's thread."""
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop serving and wait (up to `timeout` seconds) for the thread to end; idempotent.
        A request being handled is finished first."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._release()

    def _release(self) -> None:
        for sock in (self._sock, self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                sock.close()

    def _serve(self) -> None:
        logger.info("Serving the comm port %d", self.port)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._sock, selectors.EVENT_READ)
                selector.register(self._wake_read, selectors.EVENT_READ)
                while not self._closing.is_set():
                    for key, _ in selector.select():
                        if key.fileobj is self._sock and not self._closing.is_set():
                            self._accept_one()
        except Exception:
            logger.exception(
                "The comm-port listener failed; signals and shutdown requests "
                "from the provisioner no longer reach the kernel"
            )
        finally:
            self._release()
            logger.info("Stopped serving the comm port")

    def _accept_one(self) -> None:
        try:
            conn, peer = self._sock.accept()
        except OSError as e:
            logger.warning("Could not accept a comm-port connection: %s", e)
            return
        try:
            with conn:
                request = self._read_request(conn, peer)
        except Exception as e:
            logger.warning("Dropped a comm-port request from %s: %r", peer, e)
            return
        if request is not None:
            try:
                self._handle(request)
            except Exception:
                logger.exception("Handling the comm-port request %r failed", request)

    def _read_request(self, conn: socket.socket, peer: Any) -> dict[str, Any] | None:
        conn.settimeout(REQUEST_TIMEOUT)
        data = bytearray()
        while chunk := conn.recv(4096):
            data += chunk
            if len(data) > MAX_REQUEST_BYTES:
                logger.warning("Dropped a comm-port request over %d bytes", MAX_REQUEST_BYTES)
                return None
        if not data:
            logger.debug("An empty comm-port connection from %s", peer)
            return None
        request = json.loads(data.decode("utf-8"))
        if not isinstance(request, dict):
            logger.warning("Dropped a comm-port request that is not an object: %r", request)
            return None
        return request

    def _handle(self, request: dict[str, Any]) -> None:
        known = {"signum", "shutdown"}
        if unknown := sorted(set(request) - known):
            logger.warning("Ignoring unknown fields %s of the comm-port request", unknown)
        signum = request.get("signum")
        if signum is not None:
            if isinstance(signum, bool) or not isinstance(signum, int | str):
                logger.warning("Ignoring signum %r: not a signal number", signum)
            else:
                try:
                    number = int(signum)
                except ValueError:
                    logger.warning("Ignoring signum %r: not a signal number", signum)
                else:
                    if number != 0:
                        logger.info("Comm-port request: signal %d", number)
                    self._kernel.deliver_signal(number)
        if request.get("shutdown"):
            logger.info("Comm-port request: shutdown")
            self._closing.set()
            self._kernel.shutdown()
