"""interrupt_request on control (message-mode interrupts): stops blocking and awaiting cells."""

from __future__ import annotations

import time

import pytest
from kernel_harness import KernelSession

pytestmark = pytest.mark.timeout(60)

RUNAWAY_CELLS = {
    "blocking": "import time\ntime.sleep(60)",
    "awaiting": "import anyio\nawait anyio.sleep(60)",
    "busy-loop": "while True:\n    pass",
}


def _start(kernel: KernelSession, code: str, **content: object) -> str:
    cell = kernel.execute_async(code, **content)
    kernel.iopub_matching(
        lambda m: m["parent_header"].get("msg_id") == cell and m["msg_type"] == "execute_input",
        what="the cell's execute_input",
    )
    return cell


def _assert_interrupted(kernel: KernelSession, cell: str, started: float) -> None:
    execution = kernel.collect(cell, timeout=10)
    elapsed = time.monotonic() - started
    assert execution.status == "error", execution.content
    assert execution.content["ename"] == "KeyboardInterrupt"
    assert elapsed < 5, f"the interrupt took {elapsed:.1f}s"
    [error] = execution.outputs("error")
    assert error["content"]["ename"] == "KeyboardInterrupt"


def _assert_serving(kernel: KernelSession) -> None:
    after = kernel.execute("1 + 1")
    assert after.status == "ok", after.content
    assert after.outputs("execute_result")[0]["content"]["data"]["text/plain"] == "2"


@pytest.mark.parametrize("how", sorted(RUNAWAY_CELLS))
def test_interrupt_request_stops_the_running_cell(fresh_kernel: KernelSession, how: str) -> None:
    cell = _start(fresh_kernel, RUNAWAY_CELLS[how])
    started = time.monotonic()
    reply = fresh_kernel.request("interrupt_request", channel="control", timeout=5)
    assert reply["content"] == {"status": "ok"}
    _assert_interrupted(fresh_kernel, cell, started)
    _assert_serving(fresh_kernel)


def test_kernel_manager_interrupts_by_message(fresh_kernel: KernelSession) -> None:
    """The kernelspec asks for message-mode interrupts, so `KernelManager.interrupt_kernel`
    sends an interrupt_request on control instead of signalling the process."""
    assert fresh_kernel.manager.kernel_spec is not None
    assert fresh_kernel.manager.kernel_spec.interrupt_mode == "message"
    cell = _start(fresh_kernel, RUNAWAY_CELLS["blocking"])
    started = time.monotonic()
    fresh_kernel.manager.interrupt_kernel()
    _assert_interrupted(fresh_kernel, cell, started)
    _assert_serving(fresh_kernel)


def test_interrupt_stops_a_cell_waiting_for_input(fresh_kernel: KernelSession) -> None:
    cell = _start(fresh_kernel, "input('never answered: ')", allow_stdin=True)
    request = fresh_kernel.stdin_message()
    assert request["msg_type"] == "input_request"
    started = time.monotonic()
    fresh_kernel.request("interrupt_request", channel="control", timeout=5)
    _assert_interrupted(fresh_kernel, cell, started)
    _assert_serving(fresh_kernel)


def test_interrupt_with_no_cell_running_changes_nothing(fresh_kernel: KernelSession) -> None:
    fresh_kernel.execute("kept = 'still here'")
    reply = fresh_kernel.request("interrupt_request", channel="control", timeout=5)
    assert reply["content"] == {"status": "ok"}
    check = fresh_kernel.execute("kept")
    assert check.status == "ok", check.content
    assert check.outputs("execute_result")[0]["content"]["data"]["text/plain"] == "'still here'"


def test_interrupt_aborts_the_cells_queued_behind(fresh_kernel: KernelSession) -> None:
    cell = _start(fresh_kernel, RUNAWAY_CELLS["blocking"])
    queued = fresh_kernel.execute_async("queued_ran = True")
    fresh_kernel.wait_until_queued(1)
    fresh_kernel.request("interrupt_request", channel="control", timeout=5)
    assert fresh_kernel.collect(cell).content["ename"] == "KeyboardInterrupt"
    assert fresh_kernel.collect(queued).status == "aborted"
    check = fresh_kernel.execute("'queued_ran' in globals()")
    assert check.outputs("execute_result")[0]["content"]["data"]["text/plain"] == "False"


def test_interrupted_cell_keeps_the_execution_count_consistent(fresh_kernel: KernelSession) -> None:
    before = fresh_kernel.execute("1").content["execution_count"]
    cell = _start(fresh_kernel, RUNAWAY_CELLS["awaiting"])
    fresh_kernel.request("interrupt_request", channel="control", timeout=5)
    interrupted = fresh_kernel.collect(cell)
    after = fresh_kernel.execute("2")
    assert interrupted.content["execution_count"] == before + 1
    assert after.content["execution_count"] == before + 2
