"""interrupt_request on control (message-mode interrupts): stops blocking and awaiting cells."""

from __future__ import annotations

import time
import uuid

import pytest
from kernel_harness import IMPORT_IN_ANOTHER_THREAD, IMPORTING, KernelSession

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


KERNEL_CODE_LOOPS = {
    # Nearly all of the time in async-kernel's stream and iopub code (print writes to it).
    "printing": "while True:\n    print('x', end='')",
    # Scheduling on another caller, and blocking in Pending.wait_sync (an interruptible wait).
    "scheduling": (
        "from async_kernel import Caller\n"
        "spin = Caller.get(name='spin')\n"
        "while True:\n"
        "    spin.call_soon(int).wait_sync()\n"
        "    spin.call_direct(int)"
    ),
}


@pytest.mark.parametrize("how", sorted(KERNEL_CODE_LOOPS))
def test_an_interrupt_never_lands_inside_the_kernels_own_code(
    fresh_kernel: KernelSession, how: str
) -> None:
    """A cell that spends its time in async-kernel's code (printing, scheduling) is interrupted
    in its own code every time, and the kernel's output and callers go on working after it: a
    KeyboardInterrupt inside the kernel's code would leave a wake-up flag set without its
    wake-up (and all later output stuck) or a lock held."""
    for _ in range(8):
        cell = _start(fresh_kernel, KERNEL_CODE_LOOPS[how])
        started = time.monotonic()
        fresh_kernel.send("interrupt_request", channel="control")
        execution = fresh_kernel.collect(cell, timeout=10)
        assert execution.status == "error", execution.content
        assert execution.content["ename"] == "KeyboardInterrupt"
        assert time.monotonic() - started < 5
    after = fresh_kernel.execute(
        "from async_kernel import Caller\n"
        "print('still', Caller.get(name='spin').call_soon(lambda: 'serving').wait_sync(10))"
    )
    assert after.status == "ok", after.content
    assert after.stream("stdout") == "still serving\n"


def test_an_interrupt_never_lands_inside_the_import_machinery(
    fresh_kernel: KernelSession,
) -> None:
    """importlib takes its locks in Python code: a KeyboardInterrupt raised between taking one
    and the `try` that gives it back would leave it held, and every later import in any other
    thread would wait forever. The interrupt lands in the cell's own code instead."""
    for _ in range(8):
        cell = _start(fresh_kernel, IMPORTING)
        fresh_kernel.send("interrupt_request", channel="control")
        execution = fresh_kernel.collect(cell, timeout=10)
        assert execution.status == "error", execution.content
        assert execution.content["ename"] == "KeyboardInterrupt"
    after = fresh_kernel.execute(IMPORT_IN_ANOTHER_THREAD)
    assert after.status == "ok", after.content
    assert after.stream("stdout") == "imports work\n"


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


# --- KeyboardInterrupt lands only in the running cell's own execution ------------------------

COUNT_SIGINTS = """
import signal
sigints = [0]
_kernel_handler = signal.getsignal(signal.SIGINT)

def _counting_handler(signum, frame):
    sigints[0] += 1
    _kernel_handler(signum, frame)

signal.signal(signal.SIGINT, _counting_handler)
"""
"""Counts the SIGINTs the kernel receives, then lets the kernel's own handler decide."""

SPINNERS = {
    # Each says it spins, then spins in pure Python (so a SIGINT is handled inside it) until
    # 3 SIGINTs have arrived. `start_spinning()` is called by the awaiting cell.
    "comm handler": """
import sys
def spin_target(comm, open_msg):
    @comm.on_msg
    def _spin(msg):
        print("spinning"); sys.stdout.flush()
        while sigints[0] < 3:
            pass
        spun.append("comm handler")

spun = []
get_ipython().kernel.comm_manager.register_target("spin", spin_target)
def start_spinning():
    pass
""",
    "scheduled call": """
import sys
from async_kernel import Caller

def spin():
    print("spinning"); sys.stdout.flush()
    while sigints[0] < 3:
        pass
    spun.append("scheduled call")

spun = []
def start_spinning():
    Caller.get().call_soon(spin)
""",
    "queue item": """
import sys
from async_kernel import Caller

def spin_item():
    print("spinning"); sys.stdout.flush()
    while sigints[0] < 3:
        pass
    spun.append("queue item")

spun = []
def start_spinning():
    Caller.get().queue_call(spin_item)
""",
}


@pytest.mark.parametrize("what", sorted(SPINNERS))
def test_interrupt_hits_the_awaiting_cell_never_what_spins_beside_it(
    fresh_kernel: KernelSession, what: str
) -> None:
    """A comm handler, a scheduled call or a queue item spins in the shell thread while a cell
    awaits; the interrupt's SIGINTs land in the spinner, which must not be hit: it finishes,
    the awaiting cell is interrupted, and the kernel serves on."""
    kernel = fresh_kernel
    assert kernel.execute(COUNT_SIGINTS + SPINNERS[what]).status == "ok"
    comm_id = uuid.uuid4().hex
    if what == "comm handler":
        opened = kernel.send("comm_open", {"comm_id": comm_id, "target_name": "spin", "data": {}})
        kernel.iopub_until_idle(opened)
    cell = _start(kernel, "import anyio\nstart_spinning()\nawait anyio.sleep(60)")
    if what == "comm handler":
        kernel.send("comm_msg", {"comm_id": comm_id, "data": {}})
    kernel.iopub_matching(
        lambda m: m["msg_type"] == "stream" and "spinning" in m["content"]["text"],
        what="the spinner's first output",
    )
    reply = kernel.request("interrupt_request", channel="control", timeout=10)
    assert reply["content"] == {"status": "ok"}
    execution = kernel.collect(cell, timeout=30)
    assert execution.content["ename"] == "KeyboardInterrupt"
    assert kernel.manager.is_alive()
    check = kernel.execute("spun, sigints[0] >= 3")
    assert check.status == "ok", check.content
    assert check.outputs("execute_result")[0]["content"]["data"]["text/plain"] == (
        f"(['{what}'], True)"
    )
    _assert_serving(kernel)


def test_interrupt_stops_a_comm_handler_that_spins_while_no_cell_runs(
    fresh_kernel: KernelSession,
) -> None:
    kernel = fresh_kernel
    setup = """
import sys
def forever_target(comm, open_msg):
    @comm.on_msg
    def _spin(msg):
        print("spinning"); sys.stdout.flush()
        while True:
            pass
get_ipython().kernel.comm_manager.register_target("forever", forever_target)
"""
    assert kernel.execute(setup).status == "ok"
    comm_id = uuid.uuid4().hex
    opened = kernel.send("comm_open", {"comm_id": comm_id, "target_name": "forever", "data": {}})
    kernel.iopub_until_idle(opened)
    message = kernel.send("comm_msg", {"comm_id": comm_id, "data": {}})
    kernel.iopub_matching(
        lambda m: m["msg_type"] == "stream" and m["parent_header"].get("msg_id") == message,
        what="the handler's output",
    )
    kernel.request("interrupt_request", channel="control", timeout=10)
    outputs = kernel.iopub_until_idle(message, timeout=30)
    [error] = [m for m in outputs if m["msg_type"] == "error"]
    assert error["content"]["ename"] == "KeyboardInterrupt"
    _assert_serving(kernel)


RAISERS = {
    "KeyboardInterrupt": "raise KeyboardInterrupt",
    "SystemExit": "raise SystemExit(3)",
    "BaseException subclass": "raise Custom('custom')",
}


@pytest.mark.parametrize("raised", sorted(RAISERS))
def test_whatever_a_comm_handler_raises_is_reported_and_the_kernel_serves_on(
    fresh_kernel: KernelSession, raised: str
) -> None:
    kernel = fresh_kernel
    setup = f"""
class Custom(BaseException):
    pass

def raising_target(comm, open_msg):
    @comm.on_msg
    def _raise(msg):
        {RAISERS[raised]}
get_ipython().kernel.comm_manager.register_target("raising", raising_target)
"""
    assert kernel.execute(setup).status == "ok", setup
    comm_id = uuid.uuid4().hex
    opened = kernel.send("comm_open", {"comm_id": comm_id, "target_name": "raising", "data": {}})
    kernel.iopub_until_idle(opened)
    message = kernel.send("comm_msg", {"comm_id": comm_id, "data": {}})
    outputs = kernel.iopub_until_idle(message)
    [error] = [m for m in outputs if m["msg_type"] == "error"]
    assert error["content"]["ename"] in ("KeyboardInterrupt", "SystemExit", "Custom")
    assert kernel.manager.is_alive()
    again = kernel.send("comm_msg", {"comm_id": comm_id, "data": {}})
    assert [m["msg_type"] for m in kernel.iopub_until_idle(again)] == ["error"]
    _assert_serving(kernel)


@pytest.mark.parametrize("raised", sorted(RAISERS))
@pytest.mark.parametrize("how", ["call_soon", "queue_call"])
def test_whatever_a_call_on_the_shell_caller_raises_leaves_the_kernel_serving(
    fresh_kernel: KernelSession, raised: str, how: str
) -> None:
    kernel = fresh_kernel
    code = f"""
from async_kernel import Caller

class Custom(BaseException):
    pass

def raiser():
    {RAISERS[raised]}
Caller.get().{how}(raiser)
"""
    assert kernel.execute(code).status == "ok", code
    _assert_serving(kernel)
    assert kernel.manager.is_alive()
