"""The floor kernel: the least a Python Jupyter kernel can be, as the benchmarks' reference.

    python benchmarks/floor_kernel.py -f {connection_file}

One thread serves shell and control with one `zmq.Poller`; a jupyter_client `Session` (the
connection file's key and signature scheme) signs and checks every message. A cell is
`exec` in one namespace with `sys.stdout` and `sys.stderr` redirected to a `StringIO`; what it
printed goes out as one `stream` message once it has run. No IPython, no event loop, no
output thread, no history, no comms, no completion: whatever a real kernel adds costs at least
this much on top, which is why `kernel_bench.py` reports every figure against it. Top-level
`await` is accepted (the cell is then run with `asyncio.run`, imported on first use), but
nothing is answered while a cell runs.

Answers: `kernel_info_request` (shell and control), `execute_request`, `shutdown_request`
(reply, then exit), `interrupt_request` (reply; the interrupt itself is the SIGINT jupyter_client
sends), minimal empty replies to `is_complete`, `complete`, `inspect`, `history` and `comm_info`
requests, an error reply to any other `*_request`; other messages (comm messages, `input_reply`)
are ignored. Every request is bracketed by `busy` and `idle` on iopub, as the protocol asks.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import json
import os
import platform
import sys
import threading
import traceback
from typing import Any

import zmq
from jupyter_client.session import Session

PROTOCOL_VERSION = "5.3"
_ALLOW_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

KERNEL_INFO = {
    "status": "ok",
    "protocol_version": PROTOCOL_VERSION,
    "implementation": "floor",
    "implementation_version": "1.0",
    "language_info": {
        "name": "python",
        "version": platform.python_version(),
        "mimetype": "text/x-python",
        "file_extension": ".py",
        "pygments_lexer": "ipython3",
        "codemirror_mode": {"name": "ipython", "version": 3},
        "nbconvert_exporter": "python",
    },
    "banner": f"floor kernel (benchmark reference), Python {platform.python_version()}",
    "help_links": [],
}


def _url(info: dict[str, Any], port_name: str) -> str:
    if info.get("transport", "tcp") == "ipc":
        return f"ipc://{info['ip']}-{info[port_name]}"
    return f"tcp://{info['ip']}:{info[port_name]}"


def _heartbeat(url: str) -> None:
    # Its own context, so that closing the main one at shutdown never waits for this socket.
    ctx = zmq.Context()
    hb = ctx.socket(zmq.REP)
    hb.bind(url)
    zmq.proxy(hb, hb)  # echo every ping, in C with the GIL released


class FloorKernel:
    def __init__(self, info: dict[str, Any]) -> None:
        self.session = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"])
        self.ctx = zmq.Context()
        self.shell = self.ctx.socket(zmq.ROUTER)
        self.control = self.ctx.socket(zmq.ROUTER)
        self.iopub = self.ctx.socket(zmq.PUB)
        self.stdin = self.ctx.socket(zmq.ROUTER)  # bound as the protocol asks; input() unsupported
        for socket, port in (
            (self.shell, "shell_port"),
            (self.control, "control_port"),
            (self.iopub, "iopub_port"),
            (self.stdin, "stdin_port"),
        ):
            socket.linger = 1000
            socket.bind(_url(info, port))
        threading.Thread(target=_heartbeat, args=(_url(info, "hb_port"),), daemon=True).start()
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        self.execution_count = 0
        self.running = True

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        self.publish("status", {"execution_state": "starting"}, None)
        poller = zmq.Poller()
        poller.register(self.control, zmq.POLLIN)
        poller.register(self.shell, zmq.POLLIN)
        while self.running:
            try:
                events = dict(poller.poll())
                while self.running and self.control.poll(0):  # control first
                    self.handle(self.control, self.control.recv_multipart())
                if self.running and self.shell in events:
                    self.handle(self.shell, self.shell.recv_multipart())
            except KeyboardInterrupt:  # a SIGINT that arrived outside a cell
                continue
        self.ctx.destroy(linger=1000)  # deliver the last replies
        os._exit(0)  # the heartbeat thread is blocked in zmq.proxy for good

    def handle(self, socket: zmq.Socket[bytes], frames: list[bytes]) -> None:
        try:
            idents, parts = self.session.feed_identities(frames, copy=True)
            msg = self.session.deserialize(parts, content=True, copy=True)
        except Exception:  # bad signature or malformed: drop it, as ipykernel does
            return
        msg_type = msg["header"]["msg_type"]
        if not msg_type.endswith("_request"):
            return  # comm_open/comm_msg/comm_close, input_reply, ...: nothing to answer
        self.publish("status", {"execution_state": "busy"}, msg)
        reply_type = msg_type[: -len("_request")] + "_reply"
        if msg_type == "execute_request":
            content = self.execute(msg)
        elif msg_type == "kernel_info_request":
            content = KERNEL_INFO
        elif msg_type == "shutdown_request":
            restart = bool(msg["content"].get("restart", False))
            content = {"status": "ok", "restart": restart}
            self.publish(reply_type, content, msg)  # as ipykernel does, for iopub-only watchers
            self.running = False
        elif msg_type == "interrupt_request":
            content = {"status": "ok"}
        else:
            content = self.minimal_reply(msg_type, msg["content"])
        self.session.send(socket, reply_type, content, parent=msg, ident=idents)
        self.publish("status", {"execution_state": "idle"}, msg)

    def publish(
        self, msg_type: str, content: dict[str, Any], parent: dict[str, Any] | None
    ) -> None:
        self.session.send(self.iopub, msg_type, content, parent=parent, ident=msg_type.encode())

    # -- execute ---------------------------------------------------------------------------

    def execute(self, msg: dict[str, Any]) -> dict[str, Any]:
        request = msg["content"]
        code = request.get("code", "")
        silent = bool(request.get("silent", False))
        if not silent:
            self.execution_count += 1
            self.publish(
                "execute_input", {"code": code, "execution_count": self.execution_count}, msg
            )
        out = io.StringIO()
        err = io.StringIO()
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        error: dict[str, Any] | None = None
        try:
            compiled = compile(code, f"<cell {self.execution_count}>", "exec", flags=_ALLOW_AWAIT)
            if compiled.co_flags & inspect.CO_COROUTINE:  # top-level await
                import asyncio

                asyncio.run(eval(compiled, self.namespace))
            else:
                exec(compiled, self.namespace)
        except BaseException as e:  # the cell's error, whatever it is, is the reply's content
            error = {
                "ename": type(e).__name__,
                "evalue": str(e),
                "traceback": traceback.format_exception(e),
            }
        finally:
            sys.stdout, sys.stderr = saved
        if not silent:
            for name, buffer in (("stdout", out), ("stderr", err)):
                text = buffer.getvalue()
                if text:
                    self.publish("stream", {"name": name, "text": text}, msg)
            if error is not None:
                self.publish("error", error, msg)
        if error is not None:
            return {"status": "error", "execution_count": self.execution_count, **error}
        return {"status": "ok", "execution_count": self.execution_count, "user_expressions": {}}

    # -- everything else -------------------------------------------------------------------

    @staticmethod
    def minimal_reply(msg_type: str, request: dict[str, Any]) -> dict[str, Any]:
        if msg_type == "is_complete_request":
            return {"status": "unknown"}
        if msg_type == "complete_request":
            cursor = request.get("cursor_pos", 0)
            return {
                "status": "ok",
                "matches": [],
                "cursor_start": cursor,
                "cursor_end": cursor,
                "metadata": {},
            }
        if msg_type == "inspect_request":
            return {"status": "ok", "found": False, "data": {}, "metadata": {}}
        if msg_type == "history_request":
            return {"status": "ok", "history": []}
        if msg_type == "comm_info_request":
            return {"status": "ok", "comms": {}}
        return {
            "status": "error",
            "ename": "NotImplementedError",
            "evalue": f"the floor kernel does not answer {msg_type}",
            "traceback": [],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-f", dest="connection_file", required=True)
    args = parser.parse_args()
    with open(args.connection_file) as f:
        info = json.load(f)
    FloorKernel(info).run()


if __name__ == "__main__":
    main()
