"""The Jupyter debug protocol: debug_request on control, debug_event on iopub, over debugpy.

Every test runs a kernel of its own (debugpy starts once per process and a debug session is the
process's), on both backends. Cells are held at breakpoints, never by waiting out a time.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Any

import psutil
import pytest
from debug_client import DebugClient, Stop
from ipykernel.compiler import murmur2_x86
from kernel_harness import Hold, KernelSession, wait_for_exit

pytestmark = pytest.mark.timeout(120)

KERNEL_THREADS = {"ControlThread", "ShellChannel", "Heartbeat", "Debugger"}


@pytest.fixture
def dap(fresh_kernel: KernelSession) -> DebugClient:
    return DebugClient(fresh_kernel)


def _continue_to_end(dap: DebugClient, stop: Stop) -> str:
    """Continue the stopped cell; its stdout once it has replied ok."""
    dap.ok("continue", {"threadId": stop.thread_id})
    execution = dap.kernel.collect(stop.msg_id)
    assert execution.status == "ok", execution.content
    return execution.stream()


def test_kernel_info_and_no_debugpy_until_the_first_debug_request(dap: DebugClient) -> None:
    kernel = dap.kernel
    info = kernel.request("kernel_info_request")["content"]
    assert info["debugger"] is True
    assert "debugger" in info["supported_features"]
    imported = kernel.execute("import sys; print('debugpy' in sys.modules)").stream()
    assert imported == "False\n", "debugpy was imported before anyone debugged"
    dap.ok("debugInfo", {})
    assert kernel.execute("print('debugpy' in sys.modules)").stream() == "False\n"
    dap.start()
    assert kernel.execute("print('debugpy' in sys.modules)").stream() == "True\n"


def test_initialize_attach_and_debug_info(dap: DebugClient) -> None:
    before = dap.ok("debugInfo", {})
    assert before["isStarted"] is False
    assert before["tmpFileSuffix"] == ".py"
    # JupyterLab asks every kernel for debugInfo: that alone starts no Debugger thread.
    state = dap.kernel.request("caller_state_request", channel="control")["content"]
    assert not any(row["name"].startswith("Debugger") for row in state["callers"])
    capabilities = dap.start()
    assert capabilities["supportsConfigurationDoneRequest"] is True
    info = dap.ok("debugInfo", {})
    assert info["isStarted"] is True
    assert info["hashMethod"] == "Murmur2"
    assert isinstance(info["hashSeed"], int)
    assert info["tmpFilePrefix"].endswith(os.sep)
    assert info["tmpFileSuffix"] == ".py"
    assert info["breakpoints"] == []
    assert info["stoppedThreads"] == []
    assert info["richRendering"] is True
    assert info["exceptionPaths"] == ["Python Exceptions"]
    assert info["copyToGlobals"] is True
    assert dap.ok("configurationDone", {}) == {}


def test_dump_cell_writes_the_file_the_hash_rule_names(dap: DebugClient) -> None:
    dap.start()
    info = dap.ok("debugInfo", {})
    code = "x = 'caf\u00e9'\ny = [x] * 3  # \u2603\n"
    path = dap.ok("dumpCell", {"code": code})["sourcePath"]
    expected = murmur2_x86(code, info["hashSeed"])  # ipykernel's rule, as JupyterLab's
    assert path == f"{info['tmpFilePrefix']}{expected}{info['tmpFileSuffix']}"
    with open(path, encoding="utf-8") as f:
        assert f.read() == code
    directory = os.path.dirname(path)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0
    dap.ok("setBreakpoints", {"source": {"path": path}, "breakpoints": [{"line": 2}]})
    listed = dap.ok("debugInfo", {})["breakpoints"]
    assert listed == [{"source": path, "breakpoints": [{"line": 2}]}]
    source = dap.ok("source", {"source": {"path": path}})
    assert source["content"] == code


def test_breakpoint_stops_then_stack_scopes_variables_evaluate_continue(
    dap: DebugClient,
) -> None:
    dap.start()
    code = "x = 41\ny = x + 1\nprint('done', y)\n"
    stop = dap.run_to_breakpoint(code, 2)
    frame = dap.top_frame(stop)
    assert frame["source"]["path"] == stop.path
    assert frame["line"] == 2
    assert dap.ok("debugInfo", {})["stoppedThreads"] == [stop.thread_id]
    variables = dap.scope_variables(frame["id"], "Globals")
    assert variables["x"]["value"] == "41"
    assert "y" not in variables
    assert not {"In", "Out", "get_ipython", "exit", "quit", "_ih"} & set(variables)
    result = dap.ok("evaluate", {"expression": "x * 2", "frameId": frame["id"]})
    assert result["result"] == "82"
    rich = dap.ok("richInspectVariables", {"variableName": "x", "frameId": frame["id"]})
    assert rich["data"]["text/plain"] == "41"
    listed = {v["name"]: v["value"] for v in dap.ok("inspectVariables", {})["variables"]}
    assert listed["x"] == "41"
    assert _continue_to_end(dap, stop) == "done 42\n"
    assert dap.ok("debugInfo", {})["stoppedThreads"] == []


def test_stack_trace_starts_at_the_cell(dap: DebugClient) -> None:
    dap.start()
    first = "def f(n):\n    m = n + 1\n    return m\n"
    assert dap.kernel.execute(first).status == "ok"
    f_path = dap.break_at(first, 2)
    code = "r = f(1)\nprint(r)\n"
    msg_id = dap.kernel.execute_async(code)
    event = dap.event("stopped")
    stop = Stop(msg_id, f_path, event["body"]["threadId"], event)
    frames = dap.ok("stackTrace", {"threadId": stop.thread_id})["stackFrames"]
    assert [(f["name"], f["line"]) for f in frames] == [("f", 2), ("<module>", 1)]
    assert frames[0]["source"]["path"] == f_path
    assert frames[1]["source"]["path"].startswith(dap.ok("debugInfo", {})["tmpFilePrefix"])
    assert _continue_to_end(dap, stop) == "2\n"


def test_breakpoint_after_leading_empty_lines_stops_on_its_line(dap: DebugClient) -> None:
    dap.start()
    code = "\n\n\nx = 1\ny = x + 1\nprint(y)\n"
    stop = dap.run_to_breakpoint(code, 5)
    assert dap.top_frame(stop)["line"] == 5
    assert _continue_to_end(dap, stop) == "2\n"


def test_breakpoint_after_an_await_stops(dap: DebugClient) -> None:
    dap.start()
    code = "import anyio\nx = 1\nawait anyio.sleep(0)\ny = x + 1\nprint('after await', y)\n"
    stop = dap.run_to_breakpoint(code, 4)
    frame = dap.top_frame(stop)
    assert (frame["source"]["path"], frame["line"]) == (stop.path, 4)
    assert dap.scope_variables(frame["id"], "Globals")["x"]["value"] == "1"
    assert _continue_to_end(dap, stop) == "after await 2\n"


def test_kernel_answers_kernel_info_on_both_channels_while_stopped(dap: DebugClient) -> None:
    dap.start()
    stop = dap.run_to_breakpoint("a = 1\nb = 2\n", 2)
    kernel = dap.kernel
    assert kernel.request("kernel_info_request", channel="control")["content"]["status"] == "ok"
    assert kernel.request("kernel_info_request")["content"]["status"] == "ok"
    state = kernel.request("caller_state_request", channel="control")["content"]
    assert "Debugger" in {row["name"] for row in state["callers"]}
    _continue_to_end(dap, stop)


def test_the_kernels_threads_are_not_listed(dap: DebugClient) -> None:
    dap.start()
    stop = dap.run_to_breakpoint("a = 1\nb = 2\n", 2)
    dap.ok("inspectVariables", {})  # runs in a worker thread of the Debugger caller
    names = {t["name"] for t in dap.ok("threads", {})["threads"]}
    assert "MainThread" in names
    assert not names & KERNEL_THREADS, names
    kernel_prefixes = ("Introspection", "InterruptResignal", "Debugger")
    assert not any(n.startswith(kernel_prefixes) for n in names), names
    _continue_to_end(dap, stop)


def test_inspect_variables_when_not_stopped(dap: DebugClient) -> None:
    dap.start()
    code = "numbers = {'one': 1, 'two': [2, 2]}\nlabel = 'hi'\nimport json\n"
    assert dap.kernel.execute(code).status == "ok"
    listed = {v["name"]: v for v in dap.ok("inspectVariables", {})["variables"]}
    assert listed["label"]["value"] == "'hi'"
    assert listed["label"]["type"] == "str"
    assert "json" not in listed  # modules are not variables
    assert not {"In", "Out", "get_ipython", "exit", "quit", "open", "_ih", "_i1"} & set(listed)
    reference = listed["numbers"]["variablesReference"]
    assert reference > 0
    children = dap.ok("variables", {"variablesReference": reference})["variables"]
    assert {(c["name"], c["value"]) for c in children} == {("'one'", "1"), ("'two'", "[2, 2]")}
    rich = dap.ok("richInspectVariables", {"variableName": "label"})
    assert rich["data"]["text/plain"] == "'hi'"
    missing = dap.ok("richInspectVariables", {"variableName": "no_such_name"})
    assert missing["data"] == {}


def test_copy_to_globals(dap: DebugClient) -> None:
    dap.start()
    code = "def g():\n    local = 'kept'\n    return len(local)\ng()\n"
    stop = dap.run_to_breakpoint(code, 3)
    frame = dap.top_frame(stop)
    assert frame["name"] == "g"
    dap.ok(
        "copyToGlobals",
        {"srcVariableName": "local", "dstVariableName": "copied", "srcFrameId": frame["id"]},
    )
    _continue_to_end(dap, stop)
    assert dap.kernel.execute("print(copied)").stream() == "kept\n"
    refused = dap.request(
        "copyToGlobals",
        {"srcVariableName": "x", "dstVariableName": "a']=1;b['", "srcFrameId": 1},
    )
    assert refused["success"] is False


def test_modules_lists_loaded_python_modules(dap: DebugClient) -> None:
    dap.start()
    body = dap.ok("modules", {})
    assert body["totalModules"] > 0
    names = {m["name"] for m in body["modules"]}
    assert "json" in names or "os" in names or "asyncio" in names
    assert all(m["path"].endswith(".py") for m in body["modules"])


def test_two_requests_back_to_back_answered_in_order_busy_idle_alternating(
    dap: DebugClient,
) -> None:
    dap.start()
    dap.kernel.sync()
    first, first_seq = dap.send("debugInfo", {})
    second, second_seq = dap.send("inspectVariables", {})
    assert dap.reply(first, first_seq)["command"] == "debugInfo"
    assert dap.reply(second, second_seq)["command"] == "inspectVariables"
    statuses = [s for s in dap.kernel.statuses(until=second) if s[1] in (first, second)]
    assert statuses == [
        ("busy", first),
        ("idle", first),
        ("busy", second),
        ("idle", second),
    ]


def test_disconnect_then_initialize_again(dap: DebugClient) -> None:
    dap.start()
    code = "x = 1\ny = 2\n"
    stop = dap.run_to_breakpoint(code, 2)
    _continue_to_end(dap, stop)
    dap.ok("disconnect", {"restart": False, "terminateDebuggee": True})
    info = dap.ok("debugInfo", {})
    assert info["isStarted"] is False
    assert info["breakpoints"] == []
    assert dap.kernel.execute("print('still here')").stream() == "still here\n"
    dap.start()
    stop = dap.run_to_breakpoint("x = 3\ny = 4\nprint(x + y)\n", 2)
    assert dap.top_frame(stop)["line"] == 2
    assert _continue_to_end(dap, stop) == "7\n"


def test_just_my_code_keeps_step_in_out_of_libraries(dap: DebugClient) -> None:
    code = "import json\ns = json.dumps([1])\nprint(s)\n"
    dap.start()
    stop = dap.run_to_breakpoint(code, 2)
    dap.ok("stepIn", {"threadId": stop.thread_id})
    dap.event("stopped")
    assert dap.top_frame(stop)["source"]["path"] == stop.path  # json's code was stepped over
    assert _continue_to_end(dap, stop) == "[1]\n"
    dap.ok("disconnect", {})
    dap.start(justMyCode=False)
    stop = dap.run_to_breakpoint(code, 2)
    dap.ok("stepIn", {"threadId": stop.thread_id})
    dap.event("stopped")
    inner = dap.top_frame(stop)["source"]["path"]
    assert inner.endswith(os.path.join("json", "__init__.py")), inner
    assert _continue_to_end(dap, stop) == "[1]\n"


def test_interrupt_while_stopped_ends_the_cell_and_keeps_the_session(
    dap: DebugClient, hold: Callable[[], Hold]
) -> None:
    dap.start()
    held = hold()
    code = "x = 1\ny = 2\n" + held.blocking
    stop = dap.run_to_breakpoint(code, 2)
    reply = dap.kernel.request("interrupt_request", channel="control")
    assert reply["content"]["status"] == "ok"
    execution = dap.kernel.collect(stop.msg_id)
    assert execution.status == "error"
    assert execution.content["ename"] == "KeyboardInterrupt"
    # The session survives: the next cell stops at its breakpoint and runs to its end.
    again = dap.run_to_breakpoint("p = 1\nq = p + 1\nprint(q)\n", 2)
    assert dap.top_frame(again)["line"] == 2
    assert _continue_to_end(dap, again) == "2\n"


def test_bad_debug_requests_get_clear_errors(dap: DebugClient) -> None:
    kernel = dap.kernel
    for content in ({}, {"command": 3}, {"type": "request", "seq": 1}):
        msg_id = kernel.send("debug_request", content, channel="control")
        reply = kernel.reply(msg_id, channel="control", msg_type="debug_reply")["content"]
        assert reply["success"] is False
        assert "command" in reply["message"]
    not_started = dap.request("stackTrace", {"threadId": 1})
    assert not_started["success"] is False
    assert "initialize" in not_started["message"]
    dap.start()
    bad = dap.request("dumpCell", {"code": 42})
    assert bad["success"] is False
    missing = dap.request("setBreakpoints", {})
    assert missing["success"] is False
    assert "bad arguments" in missing["message"]
    assert kernel.execute("print('alive')").stream() == "alive\n"


def _adapter_pid(sockets_event: dict[str, Any]) -> int:
    """The pid of debugpy's adapter: the process listening on the port the kernel connects to."""
    [port] = [s["port"] for s in sockets_event["body"]["sockets"] if not s["internal"]]
    [pid] = {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid
    }
    return int(pid)


@pytest.mark.parametrize("restart", [False, True])
def test_shutdown_while_stopped_exits_and_takes_the_adapter_along(
    dap: DebugClient, restart: bool
) -> None:
    dap.start()
    adapter = _adapter_pid(dap.event("debugpySockets"))
    dap.run_to_breakpoint("x = 1\ny = 2\nwhile True:\n    y += 1\n", 2)
    kernel = dap.kernel
    reply = kernel.request("shutdown_request", {"restart": restart}, channel="control")
    assert reply["content"]["status"] == "ok"
    process = kernel.manager.provisioner.process  # type: ignore[union-attr]
    process.wait(timeout=15)
    assert process.returncode == 0, f"killed, not shut down (exit code {process.returncode})"
    assert wait_for_exit(adapter, timeout=15), "debugpy's adapter outlived the kernel"
