"""caller_state_reply's `working`, and a row for every caller (`to_thread` workers included).

`working` is true while user work is in flight: a cell or comm handler runs or waits its turn,
or user calls or queue items are scheduled or active on the shell caller, a `to_thread` worker
or a caller user code made; the kernel's own bookkeeping never counts. Every test holds the
work with a flag file ([Hold][kernel_harness.Hold]) and waits on messages or on the caller
state itself, never on time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kernel_harness import TIMEOUT, Hold, KernelSession
from kernel_msgspec import check_caller_state

pytestmark = pytest.mark.timeout(120)


def _caller_state(kernel: KernelSession) -> dict[str, Any]:
    reply = kernel.request("caller_state_request", channel="control", timeout=TIMEOUT)
    content: dict[str, Any] = reply["content"]
    check_caller_state(content)
    return content


def _working(kernel: KernelSession) -> bool:
    return bool(_caller_state(kernel)["working"])


def _wait_for_state(
    kernel: KernelSession,
    predicate: Callable[[dict[str, Any]], bool],
    what: str,
    *,
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """Ask caller_state until `predicate(state)` holds; return that state."""
    deadline = time.monotonic() + timeout
    while True:
        state = _caller_state(kernel)
        if predicate(state):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s; last state {state}")


def _wait_until_not_working(kernel: KernelSession) -> dict[str, Any]:
    return _wait_for_state(kernel, lambda s: s["working"] is False, "working became false")


def _callers(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in state["callers"]}


def _shell_queue(state: dict[str, Any], msg_type: str) -> dict[str, Any]:
    [row] = [q for q in state["shell"]["queues"] if q["msg_type"] == msg_type]
    return row


def _run(kernel: KernelSession, code: str) -> None:
    execution = kernel.execute(code)
    assert execution.status == "ok", execution.content


def _start_held_cell(kernel: KernelSession, code: str) -> str:
    cell = kernel.execute_async(code)
    kernel.iopub_matching(
        lambda m: m["parent_header"].get("msg_id") == cell and m["msg_type"] == "execute_input",
        what="the cell's execute_input",
    )
    return cell


# --- an idle kernel -------------------------------------------------------------------------


def test_an_idle_kernel_is_not_working(kernel: KernelSession) -> None:
    assert _working(kernel) is False  # after the fixture's sync
    _run(kernel, "x = 1")  # stored in history: the deferred history write is due in a while
    state = _caller_state(kernel)
    assert state["working"] is False
    assert _callers(state)["MainThread"]["scheduled"] == 0  # the history write is not there


def test_a_pending_history_write_is_not_working(fresh_kernel: KernelSession) -> None:
    kernel = fresh_kernel
    # The write after this cell is due in an hour: it is surely pending while the test looks.
    _run(kernel, "get_ipython().kernel.executor.history_write_delay = 3600")
    state = _caller_state(kernel)
    assert state["working"] is False
    callers = _callers(state)
    assert callers["ControlThread"]["scheduled"] >= 1  # the history write's timer
    assert callers["MainThread"]["scheduled"] == 0


# --- cells ----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["blocking", "awaiting"])
def test_a_running_cell_is_working(
    kernel: KernelSession, hold: Callable[[], Hold], how: str
) -> None:
    latch = hold()
    cell = _start_held_cell(kernel, latch.code(how))
    try:
        state = _caller_state(kernel)
        assert not kernel.replied(cell), "the held cell ended before caller_state was answered"
        assert state["working"] is True
        assert _shell_queue(state, "execute_request")["running"] is True
    finally:
        latch.release()
    assert kernel.collect(cell).status == "ok"
    # The reply and idle have gone out: the cell no longer counts, whatever the shell thread
    # still does to finish the request (the kernel's bookkeeping).
    assert _working(kernel) is False


def test_cells_waiting_their_turn_are_working(
    kernel: KernelSession, hold: Callable[[], Hold]
) -> None:
    latch = hold()
    cell = _start_held_cell(kernel, latch.blocking)
    queued = kernel.execute_async("'queued'")
    try:
        kernel.wait_until_queued(1)
        state = _caller_state(kernel)
        assert state["working"] is True
        assert _shell_queue(state, "execute_request")["pending"] == 1
    finally:
        latch.release()
    assert kernel.collect(cell).status == "ok"
    assert kernel.collect(queued).status == "ok"
    assert _working(kernel) is False


# --- to_thread workers ------------------------------------------------------------------------

WORKER_JOB = """
import os as _os, threading as _threading, time as _time
from async_kernel import Caller

_job_started = _threading.Event()

def _job(path):
    _job_started.set()
    while not _os.path.exists(path):
        _time.sleep(0.005)
    return "job done"

_job_pending = Caller.get().to_thread(_job, {path!r})
assert _job_started.wait(30)
"""


def _start_worker_job(kernel: KernelSession, latch: Hold) -> None:
    """A cell starts `Caller.get().to_thread(job)` and returns once the job runs (held)."""
    _run(kernel, WORKER_JOB.format(path=str(latch.path)))


def _busy_workers(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in state["callers"] if row["worker"] and row["active"] == 1]


def test_a_to_thread_job_started_by_a_cell_is_working_until_it_ends(
    kernel: KernelSession, hold: Callable[[], Hold]
) -> None:
    latch = hold()
    _start_worker_job(kernel, latch)
    try:
        state = _caller_state(kernel)
        assert state["working"] is True  # the cell has returned; its job runs on
        assert _shell_queue(state, "execute_request")["running"] is False
        [worker] = _busy_workers(state)
        assert worker["parent"] == "MainThread"
    finally:
        latch.release()
    state = _wait_until_not_working(kernel)
    assert not _busy_workers(state)
    execution = kernel.execute("print(_job_pending.result())")
    assert execution.stream() == "job done\n"


def test_a_to_thread_worker_has_its_row_and_every_child_has_one(
    kernel: KernelSession, hold: Callable[[], Hold]
) -> None:
    latch = hold()
    _start_worker_job(kernel, latch)
    try:
        state = _caller_state(kernel)
        callers = _callers(state)
        for row in state["callers"]:
            for child in row["children"]:
                assert child in callers, f"{row['name']} names {child!r}, which has no row"
        [worker] = _busy_workers(state)
        assert worker["worker"] is True
        assert worker["name"].startswith("MainThread/worker-")
        assert worker["parent"] == "MainThread"
        assert worker["name"] in callers["MainThread"]["children"]
        assert worker["protected"] is False
        assert worker["running"] is True
        assert worker["backend"] == kernel.backend
        assert worker["thread_id"] not in (None, callers["MainThread"]["thread_id"])
    finally:
        latch.release()
    name = worker["name"]
    state = _wait_for_state(
        kernel,
        lambda s: _callers(s).get(name, {"active": 0})["active"] == 0,
        "the worker's job ended",
    )
    idle = _callers(state).get(name)  # idle in the pool: still listed, as a worker
    assert idle is None or (idle["worker"] is True and idle["scheduled"] == 0)


# --- callers and queues that user code made ---------------------------------------------------

CALLER_JOB = """
import os as _os, anyio as _anyio
from async_kernel import Caller, ThreadsafeEvent

_target = Caller.get() if {where!r} == "shell" else Caller.get(name={name!r})
_call_started = ThreadsafeEvent()

async def _wait_for_release(path):
    _call_started.set()
    while not _os.path.exists(path):
        await _anyio.sleep(0.005)

_call = _target.call_soon(_wait_for_release, {path!r})
await _call_started
"""


@pytest.mark.parametrize("where", ["shell", "user caller"])
def test_an_async_call_on_a_caller_is_working_until_it_ends(
    kernel: KernelSession, hold: Callable[[], Hold], where: str
) -> None:
    latch = hold()
    name = f"bg-{uuid.uuid4().hex[:8]}"
    target = "MainThread" if where == "shell" else name
    _run(kernel, CALLER_JOB.format(where=where, name=name, path=str(latch.path)))
    try:
        try:
            state = _caller_state(kernel)
            assert state["working"] is True
            assert _callers(state)[target]["active"] >= 1
        finally:
            latch.release()
        state = _wait_until_not_working(kernel)
        assert _callers(state)[target]["running"] is True  # an idle caller is no work
        _run(kernel, "assert _call.done() and _call.exception() is None")
    finally:
        if where != "shell":
            _run(kernel, "_target.stop()")


QUEUE_JOB = """
import os as _os, anyio as _anyio
from async_kernel import Caller, ThreadsafeEvent

_target = Caller.get() if {where!r} == "shell" else Caller.get(name={name!r})
_item_started = ThreadsafeEvent()

async def _handle(item, path):
    _item_started.set()
    while not _os.path.exists(path):
        await _anyio.sleep(0.005)

for _item in range(3):
    _target.queue_call(_handle, _item, {path!r})
await _item_started
"""


@pytest.mark.parametrize("where", ["shell", "user caller"])
def test_a_user_queue_with_items_is_working_until_it_is_empty(
    kernel: KernelSession, hold: Callable[[], Hold], where: str
) -> None:
    latch = hold()
    name = f"bgq-{uuid.uuid4().hex[:8]}"
    target = "MainThread" if where == "shell" else name
    _run(kernel, QUEUE_JOB.format(where=where, name=name, path=str(latch.path)))
    try:
        try:
            state = _caller_state(kernel)
            assert state["working"] is True
            [queue] = [
                q for q in _callers(state)[target]["queues"] if q["function"].endswith("_handle")
            ]
            assert queue["running"] is True
            assert queue["pending"] == 2
        finally:
            latch.release()
        state = _wait_until_not_working(kernel)
        [queue] = [
            q for q in _callers(state)[target]["queues"] if q["function"].endswith("_handle")
        ]
        assert queue == {"function": queue["function"], "pending": 0, "running": False}
    finally:
        _run(
            kernel,
            "_target.queue_close(_handle)" + ("" if where == "shell" else "\n_target.stop()"),
        )


# --- comm handlers ----------------------------------------------------------------------------

SLOW_TARGET = """
import os as _os, time as _time

def _slow_target(comm, open_msg):
    @comm.on_msg
    def _on_msg(msg):
        comm.send({{"started": True}})
        while not _os.path.exists({path!r}):
            _time.sleep(0.005)

get_ipython().kernel.comm_manager.register_target({target!r}, _slow_target)
"""


def test_a_running_comm_handler_is_working(kernel: KernelSession, hold: Callable[[], Hold]) -> None:
    latch = hold()
    target = f"slow-{uuid.uuid4().hex[:8]}"
    _run(kernel, SLOW_TARGET.format(path=str(latch.path), target=target))
    comm_id = uuid.uuid4().hex
    opened = kernel.send("comm_open", {"comm_id": comm_id, "target_name": target, "data": {}})
    kernel.iopub_until_idle(opened)
    assert _working(kernel) is False
    message = kernel.send("comm_msg", {"comm_id": comm_id, "data": {}})
    try:
        kernel.iopub_matching(
            lambda m: m["parent_header"].get("msg_id") == message and m["msg_type"] == "comm_msg",
            what="the comm handler's first message",
        )
        state = _caller_state(kernel)
        assert state["working"] is True
        assert _shell_queue(state, "comm_msg")["running"] is True
        assert _shell_queue(state, "execute_request")["running"] is False
    finally:
        latch.release()
    kernel.iopub_until_idle(message)
    assert _working(kernel) is False
    kernel.send("comm_close", {"comm_id": comm_id, "data": {}})


# --- the kernel's own threads -----------------------------------------------------------------

SLOW_DIR = """
import os as _os, time as _time

class _SlowDir:
    def __dir__(self):
        while not _os.path.exists({path!r}):
            _time.sleep(0.005)
        return ["slow_attribute"]

slow_dir = _SlowDir()
_saved_time_limit = get_ipython().kernel.introspector.time_limit
get_ipython().kernel.introspector.time_limit = 300
"""


def test_a_completion_being_answered_is_not_working(
    kernel: KernelSession, hold: Callable[[], Hold]
) -> None:
    latch = hold()
    _run(kernel, SLOW_DIR.format(path=str(latch.path)))
    try:
        code = "slow_dir.slo"
        completion = kernel.send("complete_request", {"code": code, "cursor_pos": len(code)})
        try:
            state = _wait_for_state(
                kernel,
                lambda s: any(
                    row["name"].startswith("Introspection") and row["active"] >= 1
                    for row in s["callers"]
                ),
                "the completion runs in the introspection worker",
            )
            assert state["working"] is False  # the kernel's own thread, though it runs user code
            assert not kernel.replied(completion)
        finally:
            latch.release()
        kernel.reply(completion, msg_type="complete_reply")
    finally:
        _run(kernel, "get_ipython().kernel.introspector.time_limit = _saved_time_limit")
