"""Status truth: the last status a client sees is the kernel's real state.

Every request gets its own busy and idle; while an execute runs, the kernel re-publishes busy
(parent: the running execute) after another request's idle, and never after the execute's own.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kernel_harness import Hold, KernelSession

pytestmark = pytest.mark.timeout(120)

SHELL_REQUESTS: dict[str, dict[str, object]] = {
    "kernel_info_request": {},
    "complete_request": {"code": "pri", "cursor_pos": 3},
    "inspect_request": {"code": "len", "cursor_pos": 1, "detail_level": 0},
    "is_complete_request": {"code": "x = ("},
    "comm_info_request": {},
    "history_request": {"hist_access_type": "tail", "n": 1, "raw": True, "output": False},
}
CONTROL_REQUESTS: dict[str, dict[str, object]] = {
    "kernel_info_request": {},
    "caller_state_request": {},
    "usage_request": {},
}


def _start_held_cell(kernel: KernelSession, code: str) -> str:
    cell = kernel.execute_async(code)
    kernel.iopub_matching(
        lambda m: m["parent_header"].get("msg_id") == cell and m["msg_type"] == "execute_input",
        what="the cell's execute_input",
    )
    return cell


def _assert_busy_again_after(kernel: KernelSession, request: str, cell: str) -> None:
    """The request got busy, then idle, and the status after its idle is busy for the cell."""
    assert kernel.status_after_idle_of(request) == ("busy", cell)
    own = [
        m["content"]["execution_state"]
        for m in kernel.iopub_log
        if m["msg_type"] == "status" and m["parent_header"].get("msg_id") == request
    ]
    assert own == ["busy", "idle"]


def _last_status(kernel: KernelSession) -> tuple[str, str]:
    last = [m for m in kernel.iopub_log if m["msg_type"] == "status"][-1]
    return last["content"]["execution_state"], last["parent_header"].get("msg_id", "")


@pytest.mark.parametrize("how", ["awaiting", "blocking"])
def test_every_request_during_a_cell_is_followed_by_busy_for_the_cell(
    kernel: KernelSession, hold: Callable[[], Hold], how: str
) -> None:
    latch = hold()
    cell = _start_held_cell(kernel, latch.code(how))
    try:
        for msg_type, content in SHELL_REQUESTS.items():
            request = kernel.send(msg_type, content)
            kernel.reply(request, msg_type=msg_type.removesuffix("_request") + "_reply")
            _assert_busy_again_after(kernel, request, cell)
            assert _last_status(kernel) == ("busy", cell), msg_type
        for msg_type, content in CONTROL_REQUESTS.items():
            request = kernel.send(msg_type, content, channel="control")
            kernel.reply(request, channel="control")
            _assert_busy_again_after(kernel, request, cell)
            assert _last_status(kernel) == ("busy", cell), msg_type
        assert not kernel.replied(cell), "the held cell ended early"
    finally:
        latch.release()
    assert kernel.collect(cell).status == "ok"
    state, parent = _last_status(kernel)
    assert (state, parent) == ("idle", cell)


def test_a_comm_message_during_an_awaiting_cell_is_followed_by_busy(
    kernel: KernelSession, hold: Callable[[], Hold]
) -> None:
    latch = hold()
    cell = _start_held_cell(kernel, latch.awaiting)
    try:
        message = kernel.send("comm_msg", {"comm_id": "no-such-comm", "data": {}})
        _assert_busy_again_after(kernel, message, cell)
        assert _last_status(kernel) == ("busy", cell)
    finally:
        latch.release()
    kernel.collect(cell)
    assert _last_status(kernel) == ("idle", cell)


def test_requests_with_no_cell_running_end_idle(kernel: KernelSession) -> None:
    request = kernel.send("kernel_info_request")
    kernel.reply(request)
    statuses = kernel.statuses(until=request)
    assert statuses[-2:] == [("busy", request), ("idle", request)]
    marker = kernel.execute_async("1", silent=True)
    statuses = kernel.statuses(until=marker)
    # Nothing re-published busy after the kernel_info's idle: no execute was running.
    after = statuses[statuses.index(("idle", request)) + 1 :]
    assert after[0] == ("busy", marker), statuses


def test_busy_never_follows_the_execute_idle_when_requests_race_it(
    kernel: KernelSession,
) -> None:
    """Short cells and kernel_info requests pipelined together, many rounds: whatever the
    interleaving, no status for a cell comes after that cell's idle."""
    cells = []
    requests = []
    for i in range(60):
        cells.append(kernel.execute_async(f"race_{i} = {i}"))
        requests.append(kernel.send("kernel_info_request"))
        requests.append(kernel.send("caller_state_request", channel="control"))
    for request in requests[::2]:
        kernel.reply(request)
    for request in requests[1::2]:
        kernel.reply(request, channel="control")
    for cell in cells:
        kernel.reply(cell, msg_type="execute_reply")
    for msg_id in cells + requests:  # a request's idle may follow its reply: wait for each
        kernel.iopub_until_idle(msg_id)
    marker = kernel.execute_async("pass", silent=True)
    statuses = kernel.statuses(until=marker)
    for cell in cells:
        positions = [i for i, (_, parent) in enumerate(statuses) if parent == cell]
        assert statuses[positions[-1]] == ("idle", cell), [statuses[i] for i in positions]
    for request in requests:
        positions = [i for i, (_, parent) in enumerate(statuses) if parent == request]
        assert [statuses[i][0] for i in positions] == ["busy", "idle"]
    assert statuses[-1] == ("idle", marker)
