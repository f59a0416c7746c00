"""Requests that run no user code are answered while a cell awaits or blocks the shell thread;
executes pipelined by the thousand are all answered, in order."""

from __future__ import annotations

import time

import pytest
from kernel_harness import KernelSession
from kernel_msgspec import check_message

pytestmark = pytest.mark.timeout(180)

BUSY_CELLS = {
    "awaiting": "import anyio\nawait anyio.sleep(3)",
    "blocking": "import time\ntime.sleep(3)",
}


def _wait_until_running(kernel: KernelSession, cell: str) -> None:
    kernel.iopub_matching(
        lambda m: m["parent_header"].get("msg_id") == cell and m["msg_type"] == "execute_input",
        what="the cell's execute_input",
    )


@pytest.mark.parametrize("how", sorted(BUSY_CELLS))
def test_kernel_info_is_answered_while_a_cell_runs(kernel: KernelSession, how: str) -> None:
    cell = kernel.execute_async(BUSY_CELLS[how])
    _wait_until_running(kernel, cell)
    started = time.monotonic()
    reply = kernel.request("kernel_info_request", timeout=5)
    elapsed = time.monotonic() - started
    assert reply["content"]["status"] == "ok"
    assert not kernel.replied(cell), "the cell ended before kernel_info was answered"
    assert elapsed < 0.5, f"kernel_info took {elapsed:.2f}s while a cell was {how}"
    assert kernel.collect(cell).status == "ok"


@pytest.mark.parametrize("how", sorted(BUSY_CELLS))
def test_completion_and_inspection_are_answered_while_a_cell_runs(
    kernel: KernelSession, how: str
) -> None:
    kernel.execute("responsive_name_one = 1")
    cell = kernel.execute_async(BUSY_CELLS[how])
    _wait_until_running(kernel, cell)
    code = "responsive_name_o"
    complete = kernel.request(
        "complete_request", {"code": code, "cursor_pos": len(code)}, timeout=2
    )
    assert complete["content"]["matches"] == ["responsive_name_one"]
    inspect = kernel.request("inspect_request", {"code": "len", "cursor_pos": 1}, timeout=2)
    assert inspect["content"]["found"] is True
    is_complete = kernel.request("is_complete_request", {"code": "x = ("}, timeout=2)
    assert is_complete["content"]["status"] == "incomplete"
    assert not kernel.replied(cell), "the cell ended before the requests were answered"
    assert kernel.collect(cell).status == "ok"


def test_thousand_pipelined_executes_are_answered_in_order_ten_times(
    kernel: KernelSession,
) -> None:
    """1000 execute requests sent at once, all replies collected after; heartbeat not started."""
    assert not kernel.client.hb_channel.is_alive()
    shell = kernel.client.shell_channel
    previous_count = kernel.execute("0").content["execution_count"]
    for round_ in range(10):
        ids = [kernel.execute_async(f"r{round_} = {i}") for i in range(1000)]
        deadline = time.monotonic() + 60
        for i, msg_id in enumerate(ids):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"round {round_}: only {i} of 1000 replies in 60s"
            # Replies come in the order of the requests: no reordering, no loss.
            reply = check_message(shell.get_msg(timeout=remaining), "execute_reply", msg_id)
            assert reply["content"]["status"] == "ok", reply["content"]
            assert reply["content"]["execution_count"] == previous_count + 1
            previous_count += 1
        kernel.sync(timeout=60)  # iopub overflowed: drop what is left of it
    last = kernel.execute("r9")
    assert last.outputs("execute_result")[0]["content"]["data"]["text/plain"] == "999"
