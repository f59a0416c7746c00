"""Synchronous helpers for tests that talk to real servers on loopback (hub, gateways).

- [http][]: one HTTP request (urllib; redirects are returned, not followed).
- [wait_for][]: poll a condition with a deadline (the interval only spaces the polls).
- [free_ports][]: TCP ports on 127.0.0.1 nothing listens on.
- [KernelChannel][]: a kernel's websocket (``/api/kernels/{id}/channels``), synchronous
  (websocket-client), executing cells as a frontend does.

Synchronous on purpose: the suites share one pytest session, and an earlier suite may leave an
asyncio event loop set in the main thread. ``tests/support`` is on pytest's ``pythonpath``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any, TypeVar

import websocket

HTTP_TIMEOUT = 30.0
"""Seconds one HTTP request may take."""

KERNEL_TIMEOUT = 60.0
"""Seconds a kernel may take to start answering, or a cell to answer."""


T = TypeVar("T")


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 timestamp of the hub, the proxy or jupyter_server, as aware UTC."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def wait_for(
    condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2
) -> T:
    """Poll ``condition`` until it returns something truthy (returned), or fail after
    ``timeout`` seconds saying ``what`` did not happen. The interval only spaces the polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"within {timeout:.0f} s: {what}")
        time.sleep(interval)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


@dataclass
class Response:
    """An HTTP answer: status, headers (names are case-insensitive) and body (error statuses
    included)."""

    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body or b"null")

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf8", errors="replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT,
) -> Response:
    """One HTTP request; ``token`` goes in the Authorization header, ``body`` as JSON,
    ``headers`` override the defaults. Redirects are returned, not followed."""
    headers = {"Accept": "application/json", **(headers or {})}
    if token:
        headers["Authorization"] = f"token {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _opener.open(request, timeout=timeout) as answer:
            return Response(answer.status, answer.headers, answer.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, err.headers, err.read())


@dataclass
class KernelChannel:
    """A kernel's websocket through the proxy, used synchronously as a frontend would.

    The token goes in the Authorization header. (``?token=`` in the URL works for websockets
    only when the request says ``Sec-Fetch-Mode: websocket``, as browsers do: JupyterHub 5+
    ignores URL tokens otherwise.)"""

    url: str
    token: str
    session: str = field(default_factory=lambda: uuid.uuid4().hex)
    ws: websocket.WebSocket | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    """Messages received and not matched yet: shell replies and iopub messages arrive in no
    fixed order relative to each other, so none is dropped."""

    def open(self, timeout: float = HTTP_TIMEOUT) -> KernelChannel:
        """Connect (``websocket.WebSocketBadStatusException`` if the upgrade is refused)."""
        self.ws = websocket.create_connection(
            self.url, header=[f"Authorization: token {self.token}"], timeout=timeout
        )
        return self

    def close(self) -> None:
        """Close the websocket (the kernel goes on)."""
        if self.ws is not None:
            self.ws.close()
            self.ws = None

    def send(
        self,
        msg_type: str,
        content: dict[str, Any],
        channel: str = "shell",
        parent: dict[str, Any] | None = None,
    ) -> str:
        """Send a request (or, with ``parent``, a reply such as ``input_reply``); return its
        msg_id."""
        assert self.ws is not None, "not open"
        msg_id = uuid.uuid4().hex
        message = {
            "header": {
                "msg_id": msg_id,
                "msg_type": msg_type,
                "session": self.session,
                "username": "tests",
                "date": utcnow().isoformat(),
                "version": "5.3",
            },
            "parent_header": parent or {},
            "metadata": {},
            "content": content,
            "channel": channel,
            "buffers": [],
        }
        self.ws.send(json.dumps(message))
        return msg_id

    def receive(self, match: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        """The first message, received already or from now on, for which ``match`` is true
        (taken out; the others are kept for later calls)."""
        assert self.ws is not None, "not open"
        for index, message in enumerate(self.received):
            if match(message):
                return self.received.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching kernel message within {timeout:.0f} s")
            self.ws.settimeout(remaining)
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            message: dict[str, Any] = json.loads(raw)
            if match(message):
                return message
            self.received.append(message)

    def wait_ready(self, timeout: float = KERNEL_TIMEOUT) -> dict[str, Any]:
        """Send kernel_info_request until the kernel answers one; return the reply."""
        deadline = time.monotonic() + timeout
        while True:
            msg_id = self.send("kernel_info_request", {})
            try:
                return self.receive(lambda m, i=msg_id: _reply_to(m, i), timeout=5)
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def execute(self, code: str) -> str:
        """Send execute_request for ``code``; return its msg_id."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        return self.send("execute_request", content)

    def reply(self, msg_id: str, timeout: float = KERNEL_TIMEOUT) -> dict[str, Any]:
        """The shell reply to request ``msg_id``."""
        return self.receive(lambda m: _reply_to(m, msg_id), timeout)

    def iopub(self, msg_id: str, msg_type: str, timeout: float = KERNEL_TIMEOUT) -> dict[str, Any]:
        """The iopub message of ``msg_type`` (``status``: ``execution_state`` idle) caused by
        request ``msg_id``."""

        def match(m: dict[str, Any]) -> bool:
            if m.get("channel") != "iopub" or m["parent_header"].get("msg_id") != msg_id:
                return False
            if m["header"]["msg_type"] != msg_type:
                return False
            return msg_type != "status" or m["content"].get("execution_state") == "idle"

        return self.receive(match, timeout)


def _reply_to(message: dict[str, Any], msg_id: str) -> bool:
    return message.get("channel") == "shell" and message["parent_header"].get("msg_id") == msg_id
