"""A Jupyter debug protocol client for the kernel tests: DAP requests in `debug_request`s on
control, `debug_event`s read from iopub, as JupyterLab's debugger sends and reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kernel_harness import TIMEOUT, KernelSession, Message

INITIALIZE_ARGUMENTS = {
    "clientID": "jupyterlab",
    "clientName": "JupyterLab",
    "adapterID": "python",
    "pathFormat": "path",
    "linesStartAt1": True,
    "columnsStartAt1": True,
    "supportsVariableType": True,
    "supportsVariablePaging": True,
    "supportsRunInTerminalRequest": True,
    "locale": "en",
}
"""What JupyterLab 4 sends in its `initialize`."""


@dataclass
class Stop:
    """A cell stopped at a breakpoint."""

    msg_id: str
    """The execute request's."""
    path: str
    """The cell's file."""
    thread_id: int
    event: dict[str, Any]


@dataclass
class DebugClient:
    kernel: KernelSession
    seq: int = 0
    sent: list[str] = field(default_factory=list)
    """The msg_ids of the debug_requests sent, in order."""

    def send(self, command: str, arguments: dict[str, Any] | None = None) -> tuple[str, int]:
        """Send a request; its (msg_id, seq)."""
        self.seq += 1
        content = {"type": "request", "seq": self.seq, "command": command}
        if arguments is not None:
            content["arguments"] = arguments
        msg_id = self.kernel.send("debug_request", content, channel="control")
        self.sent.append(msg_id)
        return msg_id, self.seq

    def reply(self, msg_id: str, seq: int, *, timeout: float = TIMEOUT) -> dict[str, Any]:
        reply = self.kernel.reply(
            msg_id, channel="control", msg_type="debug_reply", timeout=timeout
        )
        content: dict[str, Any] = reply["content"]
        assert content["request_seq"] == seq, content
        return content

    def request(
        self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """Send a request and return its DAP response (checked: answers this request)."""
        msg_id, seq = self.send(command, arguments)
        content = self.reply(msg_id, seq, timeout=timeout)
        assert content["command"] == command, content
        return content

    def ok(
        self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """`request`, asserting success; the response's body."""
        content = self.request(command, arguments, timeout=timeout)
        assert content["success"] is True, content
        body: dict[str, Any] = content.get("body", {})
        return body

    def start(self, **attach: Any) -> dict[str, Any]:
        """initialize then attach (with `attach` as its arguments), as JupyterLab does; the
        initialize body (the capabilities)."""
        capabilities = self.ok("initialize", INITIALIZE_ARGUMENTS, timeout=60)
        self.ok("attach", attach, timeout=60)
        return capabilities

    def event(self, name: str, *, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next debug_event named `name` (events of other names stay kept)."""

        def named(msg: Message) -> bool:
            return msg["msg_type"] == "debug_event" and msg["content"].get("event") == name

        msg = self.kernel.iopub_matching(named, timeout=timeout, what=f"a {name} debug_event")
        content: dict[str, Any] = msg["content"]
        return content

    def break_at(self, code: str, *lines: int) -> str:
        """Dump `code` as a cell and set breakpoints on `lines`; the cell's file."""
        path = str(self.ok("dumpCell", {"code": code})["sourcePath"])
        placed = self.ok(
            "setBreakpoints",
            {"source": {"path": path}, "breakpoints": [{"line": n} for n in lines]},
        )["breakpoints"]
        assert [b["line"] for b in placed] == list(lines), placed
        assert all(b["verified"] for b in placed), placed
        return path

    def run_to_breakpoint(self, code: str, line: int) -> Stop:
        """Set a breakpoint on `line` of `code`, execute it, and wait until it stops there."""
        path = self.break_at(code, line)
        self.ok("configurationDone", {})
        msg_id = self.kernel.execute_async(code)
        event = self.event("stopped")
        assert event["body"]["reason"] == "breakpoint", event
        return Stop(msg_id=msg_id, path=path, thread_id=event["body"]["threadId"], event=event)

    def top_frame(self, stop: Stop) -> dict[str, Any]:
        frames = self.ok("stackTrace", {"threadId": stop.thread_id})["stackFrames"]
        frame: dict[str, Any] = frames[0]
        return frame

    def scope_variables(self, frame_id: int, scope: str) -> dict[str, dict[str, Any]]:
        """The variables of the frame's scope named `scope` ("Locals" or "Globals"), by name."""
        scopes = self.ok("scopes", {"frameId": frame_id})["scopes"]
        [reference] = [s["variablesReference"] for s in scopes if s["name"] == scope]
        variables = self.ok("variables", {"variablesReference": reference})["variables"]
        return {v["name"]: v for v in variables}
