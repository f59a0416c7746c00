"""Drive JupyterLab in a Playwright page: open a notebook on a kernel, edit and run cells, ask
for completions, read the kernel status, and watch the kernel's messages on the websocket.

Selectors (JupyterLab 4.4+, checked against the real DOM):

- a notebook: ``.jp-NotebookPanel`` (only one is open per page: each test opens its notebook in
  a fresh workspace);
- its cells: ``.jp-Cell``; a cell's editor ``.cm-content``; its prompt ``.jp-InputPrompt``
  (``[*]:`` while it runs, ``[N]:`` after); its output ``.jp-OutputArea-output``;
- the status bar's kernel status item: ``.jp-StatusBar-TextItem[title="Change kernel for
  <path>"]``, reading ``"<display name> | <Status>"``. This is the notebook's *kernel* status: the
  session's ``kernelDisplayStatus``, i.e. the ``execution_state`` of the last iopub ``status``
  message (``Initializing`` / ``Starting`` until the kernel is connected);
- the notebook toolbar's execution indicator:
  ``[data-jp-item-name="executionProgress"] .jp-Notebook-ExecutionIndicator[data-status]``.
  Its ``data-status`` is *not* the kernel status: it is ``"busy"`` whenever the notebook has
  cells scheduled or running (JupyterLab's own execution tracking), whatever the kernel last
  published, and ``"idle"`` before any kernel is connected; otherwise it follows the kernel
  status;
- the completer popup: ``.jp-Completer`` with one ``.jp-Completer-item`` per match.

Every wait is on a DOM state (``expect``), on a websocket frame, or a poll of the REST API, each
with a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lab_harness import LabServer
from playwright.sync_api import Locator, Page, WebSocket, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

KERNEL_START_TIMEOUT = 60.0
"""Seconds a notebook's kernel may take to start and report idle (generous: 2 loaded cores)."""

UI_TIMEOUT = 20.0
"""Seconds for ordinary UI reactions (a cell starting, output appearing, a popup opening)."""

PAGE_LOAD_TIMEOUT = 60.0
"""Seconds for JupyterLab's page to load and show the notebook."""


@dataclass
class KernelMessage:
    """One kernel message seen on the notebook's websocket (v1 protocol or legacy JSON)."""

    direction: str
    """``"sent"`` (browser to kernel) or ``"received"``."""
    channel: str
    msg_type: str
    msg_id: str
    parent_msg_type: str | None
    parent_msg_id: str | None
    content: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    def __str__(self) -> str:
        extra = ""
        if self.msg_type == "stream":
            extra = f" {self.content.get('text', '')!r}"
        if self.msg_type == "status":
            extra = f" {self.content.get('execution_state')}"
        parent = f" (parent {self.parent_msg_type})" if self.parent_msg_type else ""
        return f"{self.at:.3f} {self.direction} {self.channel} {self.msg_type}{extra}{parent}"


def parse_frame(payload: str | bytes, direction: str) -> KernelMessage | None:
    """Decode a kernel websocket frame: jupyter_server's v1 binary protocol or legacy JSON."""
    try:
        if isinstance(payload, bytes):
            count = int.from_bytes(payload[:8], "little")
            offsets = [
                int.from_bytes(payload[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)
            ]
            channel = payload[offsets[0] : offsets[1]].decode()
            parts = [payload[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]
            header, parent, _metadata, content = (json.loads(part) for part in parts[:4])
        else:
            msg = json.loads(payload)
            channel = msg.get("channel", "")
            header, parent, content = msg["header"], msg.get("parent_header") or {}, msg["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return KernelMessage(
        direction=direction,
        channel=channel,
        msg_type=header.get("msg_type", ""),
        msg_id=header.get("msg_id", ""),
        parent_msg_type=(parent or {}).get("msg_type"),
        parent_msg_id=(parent or {}).get("msg_id"),
        content=content if isinstance(content, dict) else {},
    )


IDLE_TEXT = re.compile(r"\|\s*Idle\s*$")
"""The status bar kernel item once the kernel is connected and idle."""

MessagePredicate = Callable[[KernelMessage], bool]


class KernelTraffic:
    """Every kernel message the page sends and receives over its kernel websockets."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.messages: list[KernelMessage] = []
        self.sockets: list[WebSocket] = []
        page.on("websocket", self._on_websocket)

    def _on_websocket(self, ws: WebSocket) -> None:
        if "/api/kernels/" not in ws.url:
            return
        self.sockets.append(ws)
        ws.on("framesent", lambda payload: self._record(payload, "sent"))
        ws.on("framereceived", lambda payload: self._record(payload, "received"))

    def _record(self, payload: str | bytes, direction: str) -> None:
        message = parse_frame(payload, direction)
        if message is not None:
            self.messages.append(message)

    def socket_for(self, kernel_id: str) -> WebSocket:
        """The newest open websocket of kernel `kernel_id`."""
        for ws in reversed(self.sockets):
            if f"/api/kernels/{kernel_id}/" in ws.url and not ws.is_closed():
                return ws
        raise AssertionError(
            f"no open websocket to kernel {kernel_id}; seen: {[ws.url for ws in self.sockets]}"
        )

    @contextlib.contextmanager
    def expect_received(
        self, kernel_id: str, predicate: MessagePredicate, timeout: float = UI_TIMEOUT
    ) -> Iterator[None]:
        """Run the block, then wait until a frame matching `predicate` arrives from the kernel."""
        ws = self.socket_for(kernel_id)

        def matches(payload: str | bytes) -> bool:
            message = parse_frame(payload, "received")
            return message is not None and predicate(message)

        with ws.expect_event("framereceived", matches, timeout=timeout * 1000):
            yield

    def wait_requests_idle(self, kernel_id: str, since: int, timeout: float = UI_TIMEOUT) -> None:
        """Wait until every shell request the page sent since message number `since` has had
        its iopub ``idle`` (in the order the page received them)."""
        pending = {
            m.msg_id
            for m in self.messages[since:]
            if m.direction == "sent" and m.channel == "shell"
        }
        pending -= {
            m.parent_msg_id
            for m in self.messages
            if m.direction == "received"
            and m.msg_type == "status"
            and m.content.get("execution_state") == "idle"
        }
        if not pending:
            return

        def closes_last(message: KernelMessage) -> bool:
            if message.msg_type == "status" and message.content.get("execution_state") == "idle":
                pending.discard(message.parent_msg_id or "")
            return not pending

        try:
            with self.expect_received(kernel_id, closes_last, timeout=timeout):
                pass
        except PlaywrightTimeoutError:
            raise AssertionError(
                f"no idle within {timeout:.0f}s for requests {sorted(pending)}:\n{self.dump()}"
            ) from None

    def find(self, predicate: MessagePredicate) -> list[KernelMessage]:
        """The recorded messages matching `predicate`, in order."""
        return [m for m in self.messages if predicate(m)]

    def statuses(self, since: float = 0.0) -> list[str]:
        """The iopub status messages received since `since` (monotonic), as text."""
        return [
            f"{m.content.get('execution_state')} (parent {m.parent_msg_type})"
            for m in self.messages
            if m.msg_type == "status" and m.direction == "received" and m.at >= since
        ]

    def dump(self) -> str:
        """Every recorded message, one a line (for an artifact)."""
        return "\n".join(str(m) for m in self.messages)


class Notebook:
    """One notebook open in JupyterLab, on a running kernel."""

    def __init__(self, page: Page, server: LabServer, path: str, kernel_id: str) -> None:
        self.page = page
        self.server = server
        self.path = path
        self.kernel_id = kernel_id

    @property
    def panel(self) -> Locator:
        """The notebook panel (toolbar + cells)."""
        return self.page.locator(".jp-NotebookPanel").filter(visible=True)

    @property
    def cells(self) -> Locator:
        """Every cell of the notebook."""
        return self.panel.locator(".jp-Cell")

    def cell(self, index: int) -> Locator:
        """Cell `index` (0-based)."""
        return self.cells.nth(index)

    def editor(self, index: int) -> Locator:
        """The CodeMirror content element of cell `index`."""
        return self.cell(index).locator(".cm-content")

    def prompt(self, index: int) -> Locator:
        """The input prompt of cell `index`: ``[ ]:``, ``[*]:`` while running, ``[N]:`` after."""
        return self.cell(index).locator(".jp-InputPrompt")

    def output(self, index: int) -> Locator:
        """The output area of cell `index`."""
        return self.cell(index).locator(".jp-OutputArea-output")

    @property
    def kernel_status_item(self) -> Locator:
        """The status bar's kernel status item: ``"<display name> | <Status>"``."""
        return self.page.locator(f'.jp-StatusBar-TextItem[title="Change kernel for {self.path}"]')

    @property
    def execution_indicator(self) -> Locator:
        """The toolbar's execution indicator (busy while cells run, whatever the kernel says)."""
        return self.panel.locator(
            '[data-jp-item-name="executionProgress"] .jp-Notebook-ExecutionIndicator'
        )

    @property
    def completer(self) -> Locator:
        """The completer popup (visible while it offers completions)."""
        return self.page.locator(".jp-Completer").filter(visible=True)

    def kernel_status(self) -> str:
        """The kernel status the status bar shows right now, lower-cased (``busy``, ``idle``...)."""
        text = self.kernel_status_item.inner_text().strip()
        return text.rsplit("|", 1)[-1].strip().lower()

    def execution_indicator_status(self) -> str | None:
        """The toolbar execution indicator's ``data-status`` right now."""
        return self.execution_indicator.get_attribute("data-status")

    def rest_state(self) -> str:
        """The kernel's ``execution_state`` as ``GET /api/kernels/{id}`` reports it."""
        return str(self.server.kernel(self.kernel_id)["execution_state"])

    def expect_kernel_status(self, status: str, timeout: float = UI_TIMEOUT) -> None:
        """Wait until the status bar's kernel status reads `status` (``busy``, ``idle``...)."""
        expect(self.kernel_status_item).to_have_text(
            re.compile(rf"\|\s*{re.escape(status)}\s*$", re.IGNORECASE), timeout=timeout * 1000
        )

    def expect_execution_indicator(self, status: str, timeout: float = UI_TIMEOUT) -> None:
        """Wait until the toolbar execution indicator's ``data-status`` is `status`."""
        expect(self.execution_indicator).to_have_attribute(
            "data-status", status, timeout=timeout * 1000
        )

    def wait_rest_state(self, state: str, timeout: float = UI_TIMEOUT) -> None:
        """Poll ``GET /api/kernels/{id}`` until ``execution_state`` is `state` (or fail)."""
        deadline = time.monotonic() + timeout
        seen = self.rest_state()
        while seen != state:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"REST execution_state of kernel {self.kernel_id} is {seen!r}, "
                    f"expected {state!r} within {timeout:.0f}s"
                )
            # Poll interval of the server's state, not a synchronisation point.
            self.page.wait_for_timeout(100)
            seen = self.rest_state()

    def focus_editor(self, index: int) -> None:
        """Put the cursor at the end of cell `index`'s editor (edit mode)."""
        editor = self.editor(index)
        editor.click()
        expect(self.cell(index)).to_contain_class("jp-mod-active", timeout=UI_TIMEOUT * 1000)
        expect(self.panel.locator(".jp-Notebook")).to_contain_class(
            "jp-mod-editMode", timeout=UI_TIMEOUT * 1000
        )
        self.page.keyboard.press("Control+End")

    def set_cell(self, index: int, code: str) -> None:
        """Replace cell `index`'s source with `code` (inserted as-is: no auto-indent)."""
        self.focus_editor(index)
        self.page.keyboard.press("Control+A")
        self.page.keyboard.insert_text(code)
        expect(self.editor(index)).to_have_text(
            re.compile(re.escape(code.splitlines()[0])), timeout=UI_TIMEOUT * 1000
        )

    def type_in_cell(self, index: int, text: str) -> None:
        """Type `text` key by key at the end of cell `index`."""
        self.focus_editor(index)
        self.page.keyboard.type(text)
        expect(self.editor(index)).to_contain_text(text, timeout=UI_TIMEOUT * 1000)

    def run_cell(self, index: int) -> None:
        """Run cell `index` with Shift+Enter and wait until its prompt shows it was sent."""
        self.focus_editor(index)
        self.page.keyboard.press("Shift+Enter")
        expect(self.prompt(index)).not_to_have_text(
            re.compile(r"^\[\s*\]:$"), timeout=UI_TIMEOUT * 1000
        )

    def press_tab(self, index: int) -> None:
        """Press Tab at the end of cell `index` (asks the kernel for completions)."""
        self.focus_editor(index)
        self.page.keyboard.press("Tab")


def open_notebook(
    page: Page,
    server: LabServer,
    path: str,
    *,
    workspace: str,
    timeout: float = KERNEL_START_TIMEOUT,
) -> Notebook:
    """Open `path` (already on the server) in a fresh workspace; wait until its kernel is idle.

    The status bar item is waited on first: it reads ``Initializing``/``Starting`` until the
    kernel is connected, whereas the toolbar indicator's ``data-status`` already says ``idle``
    before any kernel exists.
    """
    url = server.url(f"lab/workspaces/{workspace}/tree/{path}")
    page.goto(url, timeout=PAGE_LOAD_TIMEOUT * 1000)
    panel = page.locator(".jp-NotebookPanel").filter(visible=True)
    expect(panel.locator(".jp-Cell").first).to_be_visible(timeout=PAGE_LOAD_TIMEOUT * 1000)
    status_bar_item = page.locator(f'.jp-StatusBar-TextItem[title="Change kernel for {path}"]')
    expect(status_bar_item).to_have_text(IDLE_TEXT, timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    kernel = server.kernel_for(path)
    while kernel is None or kernel.get("execution_state") != "idle":
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no idle kernel for {path} within {timeout:.0f}s: "
                f"{server.api('GET', 'api/sessions')}"
            )
        # Poll interval of the server's session list, not a synchronisation point.
        page.wait_for_timeout(100)
        kernel = server.kernel_for(path)
    notebook = Notebook(page, server, path, str(kernel["id"]))
    notebook.expect_execution_indicator("idle")
    return notebook
