"""Control channel: usage_request, caller_state_request (the wire contract), %callers, and
requests the kernel does not handle."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from kernel_harness import Hold, KernelSession
from kernel_msgspec import check_caller_state

pytestmark = pytest.mark.timeout(60)


def _caller_state(kernel: KernelSession, timeout: float = 5) -> dict[str, Any]:
    reply = kernel.request("caller_state_request", channel="control", timeout=timeout)
    assert reply["msg_type"] == "caller_state_reply"
    content: dict[str, Any] = reply["content"]
    check_caller_state(content)
    return content


def _callers(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in state["callers"]}


def _execute_queue(state: dict[str, Any]) -> dict[str, Any]:
    [row] = [q for q in state["shell"]["queues"] if q["msg_type"] == "execute_request"]
    return row


def test_usage_reply_has_ipykernel_fields(kernel: KernelSession) -> None:
    content = kernel.request("usage_request", channel="control")["content"]
    assert content["pid"] == kernel.pid
    assert content["hostname"] == os.uname().nodename
    assert content["cpu_count"] == os.cpu_count()
    assert content["kernel_memory"] > 0
    assert 0 <= content["host_cpu_percent"] <= 100 * (os.cpu_count() or 1)
    assert content["kernel_cpu"] >= 0
    assert content["host_virtual_memory"]["total"] > 0


def test_caller_state_follows_the_wire_contract(kernel: KernelSession, backend: str) -> None:
    count = kernel.execute("1").content["execution_count"]
    state = _caller_state(kernel)
    assert state["pid"] == kernel.pid
    assert state["backend"] == backend
    assert state["execution_count"] == count
    callers = _callers(state)
    main, control = callers["MainThread"], callers["ControlThread"]
    assert main["protected"] is True
    assert main["running"] is True
    assert main["parent"] is None
    assert main["backend"] == backend
    assert "ControlThread" in main["children"]
    assert control["protected"] is True
    assert control["running"] is True
    assert control["parent"] == "MainThread"
    assert main["thread_id"] != control["thread_id"]
    queue = _execute_queue(state)
    assert queue == {
        "msg_type": "execute_request",
        "subshell_id": None,
        "pending": 0,
        "running": False,
        "running_for": None,
    }


def test_caller_state_execution_count_ignores_silent_cells(kernel: KernelSession) -> None:
    count = kernel.execute("1").content["execution_count"]
    kernel.execute("2", silent=True)
    assert _caller_state(kernel)["execution_count"] == count


def test_caller_state_is_answered_while_the_shell_thread_blocks(
    kernel: KernelSession, hold: Callable[[], Hold]
) -> None:
    latch = hold()
    cell = kernel.execute_async(latch.blocking)
    queued = kernel.execute_async("'queued'")
    kernel.iopub_matching(
        lambda m: m["parent_header"].get("msg_id") == cell and m["msg_type"] == "execute_input",
        what="the blocking cell's execute_input",
    )
    try:
        state = _caller_state(kernel)
        assert not kernel.replied(cell), "the held cell ended before caller_state was answered"
        queue = _execute_queue(state)
        assert queue["running"] is True
        assert queue["running_for"] > 0
        kernel.wait_until_queued(1)  # the second request, counted while the first one blocks
        assert not kernel.replied(cell)
    finally:
        latch.release()
    assert kernel.collect(cell).status == "ok"
    assert kernel.collect(queued).status == "ok"
    assert _execute_queue(_caller_state(kernel))["running"] is False


WORKER_CELL = """
import anyio
from async_kernel import Caller

async def slow(i):
    await anyio.sleep(30)

w = Caller.get(name="worker", backend="asyncio")
for i in range(5):
    w.queue_call(slow, i)
"""


def test_caller_state_shows_a_callers_queue_and_pending_count(kernel: KernelSession) -> None:
    assert kernel.execute(WORKER_CELL).status == "ok"
    try:
        callers = _callers(_caller_state(kernel))
        worker = callers["worker"]
        assert worker["running"] is True
        assert worker["backend"] == "asyncio"
        assert worker["protected"] is False
        [queue] = [q for q in worker["queues"] if q["function"].endswith("slow")]
        assert queue["pending"] == 4
        assert queue["running"] is True
        assert worker["active"] >= 1
    finally:
        assert kernel.execute("w.queue_close(slow)\nw.stop()").status == "ok"
    after = _callers(_caller_state(kernel)).get("worker")
    assert after is None or after["running"] is False


def test_callers_magic_prints_the_caller_state(kernel: KernelSession) -> None:
    execution = kernel.execute("%callers")
    assert execution.status == "ok", execution.content
    text = execution.stream("stdout")
    state = _caller_state(kernel)
    for row in state["callers"]:
        assert row["name"] in text
    assert "execute_request" in text
    assert str(state["pid"]) in text
    assert "working true" in text  # the %callers cell itself is running


def test_callers_magic_json_is_the_wire_content(kernel: KernelSession) -> None:
    import json

    execution = kernel.execute("%callers --json")
    state = json.loads(execution.stream("stdout"))
    check_caller_state(state)
    assert {row["name"] for row in state["callers"]} >= {"MainThread", "ControlThread"}


def test_kernel_info_on_control_lists_the_caller_state_feature(kernel: KernelSession) -> None:
    content = kernel.request("kernel_info_request", channel="control")["content"]
    assert "caller_state" in content["supported_features"]


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_unknown_request_gets_an_error_reply(kernel: KernelSession, channel: str) -> None:
    msg_id = kernel.send("frobnicate_request", {"x": 1}, channel=channel)
    reply = kernel.reply(msg_id, channel=channel, msg_type="frobnicate_reply")
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"]
    assert kernel.iopub_until_idle(msg_id) == []


def test_execute_request_on_control_is_refused_not_run(kernel: KernelSession) -> None:
    msg_id = kernel.send(
        "execute_request",
        {
            "code": "ran_on_control = True",
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        channel="control",
    )
    reply = kernel.reply(msg_id, channel="control", msg_type="execute_reply")
    assert reply["content"]["status"] == "error"
    check = kernel.execute("'ran_on_control' in globals()")
    assert check.outputs("execute_result")[0]["content"]["data"]["text/plain"] == "False"


@pytest.mark.parametrize("how", ["blocking", "awaiting"])
def test_caller_state_and_usage_answered_on_shell_while_a_cell_runs(
    kernel: KernelSession, hold: Callable[[], Hold], how: str
) -> None:
    """Clients that cannot choose the control channel (a gateway's websocket sends to shell
    when a message names no channel) get the same answers there, while a cell holds the
    shell thread."""
    held = hold()
    cell = kernel.execute_async(held.code(how))
    kernel.wait_until_queued(0)
    try:
        reply = kernel.request("caller_state_request", channel="shell", timeout=5)
        assert reply["msg_type"] == "caller_state_reply"
        check_caller_state(reply["content"])
        assert reply["content"]["pid"] == kernel.pid
        usage = kernel.request("usage_request", channel="shell", timeout=5)["content"]
        assert usage["pid"] == kernel.pid
        assert not kernel.replied(cell)
    finally:
        held.release()
    assert kernel.collect(cell).status == "ok"
