"""Comms: targets registered by cells, messages both ways, and comms live while a cell awaits."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kernel_harness import Execution, Hold, KernelSession

pytestmark = pytest.mark.timeout(60)

ECHO_TARGET = """
def echo_target(comm, open_msg):
    comm.send({"opened_with": open_msg["content"]["data"]})

    @comm.on_msg
    def _echo(msg):
        comm.send({"echo": msg["content"]["data"]})

    @comm.on_close
    def _closed(msg):
        closed_comms.append(comm.comm_id)

closed_comms = []
get_ipython().kernel.comm_manager.register_target("echo", echo_target)
"""


@pytest.fixture
def echo_target(kernel: KernelSession) -> KernelSession:
    """The kernel with the `echo` comm target registered by a cell."""
    assert kernel.execute(ECHO_TARGET).status == "ok"
    return kernel


def _open(kernel: KernelSession, data: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    comm_id = uuid.uuid4().hex
    msg_id = kernel.send("comm_open", {"comm_id": comm_id, "target_name": "echo", "data": data})
    return comm_id, kernel.iopub_until_idle(msg_id)


def test_comm_info_without_comms(kernel: KernelSession) -> None:
    content = kernel.request("comm_info_request", {"target_name": "nobody-uses-this"})["content"]
    assert content == {"status": "ok", "comms": {}}


def test_comm_open_runs_the_target_registered_in_a_cell(echo_target: KernelSession) -> None:
    comm_id, messages = _open(echo_target, {"hello": 1})
    [sent] = messages
    assert sent["msg_type"] == "comm_msg"
    assert sent["content"]["comm_id"] == comm_id
    assert sent["content"]["data"] == {"opened_with": {"hello": 1}}


def test_comm_info_lists_open_comms(echo_target: KernelSession) -> None:
    comm_id, _ = _open(echo_target, {})
    comms = echo_target.request("comm_info_request", {"target_name": "echo"})["content"]["comms"]
    assert comms[comm_id] == {"target_name": "echo"}
    everything = echo_target.request("comm_info_request")["content"]["comms"]
    assert comm_id in everything


def test_comm_msg_is_echoed_by_the_cell_handler(echo_target: KernelSession) -> None:
    comm_id, _ = _open(echo_target, {})
    msg_id = echo_target.send("comm_msg", {"comm_id": comm_id, "data": {"n": 41}})
    [echo] = echo_target.iopub_until_idle(msg_id)
    assert echo["msg_type"] == "comm_msg"
    assert echo["content"] == {"comm_id": comm_id, "data": {"echo": {"n": 41}}}


def test_comm_close_runs_the_close_handler(echo_target: KernelSession) -> None:
    comm_id, _ = _open(echo_target, {})
    msg_id = echo_target.send("comm_close", {"comm_id": comm_id, "data": {}})
    echo_target.iopub_until_idle(msg_id)
    check = echo_target.execute(f"{comm_id!r} in closed_comms")
    assert check.outputs("execute_result")[0]["content"]["data"]["text/plain"] == "True"
    comms = echo_target.request("comm_info_request")["content"]["comms"]
    assert comm_id not in comms


def test_messages_for_unknown_comms_and_targets_are_harmless(kernel: KernelSession) -> None:
    unknown = kernel.send("comm_msg", {"comm_id": "no-such-comm", "data": {}})
    assert kernel.iopub_until_idle(unknown) == []
    no_target = kernel.send(
        "comm_open", {"comm_id": uuid.uuid4().hex, "target_name": "no-such-target", "data": {}}
    )
    [closed] = kernel.iopub_until_idle(no_target)
    assert closed["msg_type"] == "comm_close"
    assert kernel.execute("1 + 1").status == "ok"


def test_a_failing_comm_handler_does_not_stop_the_kernel(kernel: KernelSession) -> None:
    kernel.execute(
        "def broken(comm, msg):\n"
        "    @comm.on_msg\n"
        "    def _(msg):\n"
        "        raise RuntimeError('handler bug')\n"
        "get_ipython().kernel.comm_manager.register_target('broken', broken)"
    )
    comm_id = uuid.uuid4().hex
    opened = kernel.send("comm_open", {"comm_id": comm_id, "target_name": "broken", "data": {}})
    kernel.iopub_until_idle(opened)
    failing = kernel.send("comm_msg", {"comm_id": comm_id, "data": {}})
    kernel.iopub_until_idle(failing)
    assert kernel.execute("1 + 1").status == "ok"


def test_kernel_side_comm_opens_on_iopub(kernel: KernelSession) -> None:
    execution = kernel.execute(
        "from comm import create_comm\n"
        "c = create_comm(target_name='frontend-target', data={'from': 'kernel'})\n"
        "c.send({'n': 1})"
    )
    opened, sent = execution.iopub[1:]
    assert opened["msg_type"] == "comm_open"
    assert opened["content"]["target_name"] == "frontend-target"
    assert opened["content"]["data"] == {"from": "kernel"}
    assert sent["msg_type"] == "comm_msg"
    assert sent["content"]["comm_id"] == opened["content"]["comm_id"]
    for msg in (opened, sent):
        assert msg["parent_header"]["msg_id"] == execution.msg_id


def test_ipywidget_state_follows_frontend_updates(kernel: KernelSession) -> None:
    created = kernel.execute("import ipywidgets\nslider = ipywidgets.IntSlider(value=1)\nslider")
    assert created.status == "ok", created.content
    opens = [
        m
        for m in created.outputs("comm_open")
        if m["content"]["data"]["state"].get("_model_name") == "IntSliderModel"
    ]
    [slider_open] = opens
    comm_id = slider_open["content"]["comm_id"]
    [shown] = created.outputs("execute_result")
    assert (
        shown["content"]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] == comm_id
    )
    update = kernel.send(
        "comm_msg",
        {
            "comm_id": comm_id,
            "data": {"method": "update", "state": {"value": 7}, "buffer_paths": []},
        },
    )
    kernel.iopub_until_idle(update)
    check = kernel.execute("slider.value")
    assert check.outputs("execute_result")[0]["content"]["data"]["text/plain"] == "7"


def test_comm_round_trip_while_a_cell_awaits(
    echo_target: KernelSession, hold: Callable[[], Hold]
) -> None:
    kernel = echo_target
    comm_id, _ = _open(kernel, {})
    latch = hold()
    cell = kernel.execute_async(latch.awaiting + "'released'")
    kernel.iopub_matching(
        lambda m: m["parent_header"].get("msg_id") == cell and m["msg_type"] == "execute_input",
        what="the awaiting cell's execute_input",
    )
    try:
        msg_id = kernel.send("comm_msg", {"comm_id": comm_id, "data": {"during": "await"}})
        [echo] = kernel.iopub_until_idle(msg_id)
        assert echo["content"]["data"] == {"echo": {"during": "await"}}
        assert not kernel.replied(cell), "the held cell ended before the comm was answered"
    finally:
        latch.release()
    finished: Execution = kernel.collect(cell)
    assert finished.status == "ok"
