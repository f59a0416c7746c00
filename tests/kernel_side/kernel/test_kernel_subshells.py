"""Kernel subshells (JEP 91): each subshell a caller in a thread of its own, sharing the namespace.

Lifetime on control (create, list, delete, unknown ids), requests whose header names a subshell
(run there, in order, beside the main shell and other subshells; unknown ids refused), parent
headers, stop-on-error per subshell, kernel-wide interrupts and shutdown, stdin to the sending
client, the status rule across shells, comms (main shell by default, or in the subshell), and
the caller state. Concurrency is proven with a `threading.Barrier(2)`: each cell waits on it, so
it passes only if both run at once. Cells are held with flag files the test releases.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from kernel_harness import (
    IMPORT_IN_ANOTHER_THREAD,
    IMPORTING,
    TIMEOUT,
    Execution,
    Hold,
    KernelSession,
    wait_for_exit,
)
from kernel_msgspec import Message, check_caller_state, check_message

pytestmark = pytest.mark.timeout(120)

BARRIER_SETUP = "import threading\n_barrier = threading.Barrier(2, timeout={timeout})"
"""A barrier for two cells; one waiting alone breaks it (BrokenBarrierError) after the timeout."""

BARRIER_WAIT = "_barrier.wait()\n'passed'"


# --- helpers --------------------------------------------------------------------------------


def _control(kernel: KernelSession, msg_type: str, content: dict[str, Any] | None = None) -> Any:
    reply = kernel.request(msg_type, content, channel="control")
    return reply["content"]


def _create(kernel: KernelSession) -> str:
    content = _control(kernel, "create_subshell_request")
    assert content["status"] == "ok", content
    subshell_id: str = content["subshell_id"]
    return subshell_id


def _list(kernel: KernelSession) -> list[str]:
    content = _control(kernel, "list_subshell_request")
    assert content["status"] == "ok", content
    ids: list[str] = content["subshell_id"]
    return ids


def _send(
    kernel: KernelSession,
    msg_type: str,
    content: dict[str, Any],
    subshell_id: str | None,
) -> str:
    """Send a shell request whose header names `subshell_id` (None: the main shell)."""
    msg = kernel.client.session.msg(msg_type, content)
    if subshell_id is not None:
        msg["header"]["subshell_id"] = subshell_id
    kernel.client.shell_channel.send(msg)
    return str(msg["header"]["msg_id"])


def _execute_content(code: str, **content: Any) -> dict[str, Any]:
    full = {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    full.update(content)
    return full


def _execute_async(
    kernel: KernelSession, code: str, subshell_id: str | None, **content: Any
) -> str:
    return _send(kernel, "execute_request", _execute_content(code, **content), subshell_id)


def _execute(
    kernel: KernelSession, code: str, subshell_id: str | None, **content: Any
) -> Execution:
    return kernel.collect(_execute_async(kernel, code, subshell_id, **content))


def _result(execution: Execution) -> str:
    assert execution.status == "ok", execution.content
    [result] = execution.outputs("execute_result")
    text: str = result["content"]["data"]["text/plain"]
    return text


def _wait_started(kernel: KernelSession, cell: str) -> None:
    kernel.iopub_matching(
        lambda m: m["parent_header"].get("msg_id") == cell and m["msg_type"] == "execute_input",
        what=f"the execute_input of {cell}",
    )


def _start(kernel: KernelSession, code: str, subshell_id: str | None, **content: Any) -> str:
    cell = _execute_async(kernel, code, subshell_id, **content)
    _wait_started(kernel, cell)
    return cell


def _caller_state(kernel: KernelSession) -> dict[str, Any]:
    content: dict[str, Any] = _control(kernel, "caller_state_request")
    check_caller_state(content)
    return content


def _queue(state: dict[str, Any], msg_type: str, subshell_id: str | None) -> dict[str, Any]:
    [row] = [
        q
        for q in state["shell"]["queues"]
        if q["msg_type"] == msg_type and q["subshell_id"] == subshell_id
    ]
    return row


def _wait_for_state(
    kernel: KernelSession, predicate: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """Ask caller_state until `predicate(state)` holds."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        state = _caller_state(kernel)
        if predicate(state):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {TIMEOUT} s; last state {state}")


def _wait_until_queued(kernel: KernelSession, subshell_id: str | None, pending: int) -> None:
    _wait_for_state(
        kernel,
        lambda s: _queue(s, "execute_request", subshell_id)["pending"] == pending,
        f"{pending} execute requests queued in {subshell_id}",
    )


def _caller_name(subshell_id: str) -> str:
    return f"subshell-{subshell_id[:8]}"


def _statuses_of(kernel: KernelSession, msg_id: str) -> list[str]:
    return [
        m["content"]["execution_state"]
        for m in kernel.iopub_log
        if m["msg_type"] == "status" and m["parent_header"].get("msg_id") == msg_id
    ]


@pytest.fixture
def subshell(kernel: KernelSession) -> Iterator[str]:
    """A subshell of the module's kernel, deleted after the test."""
    subshell_id = _create(kernel)
    try:
        yield subshell_id
    finally:
        if subshell_id in _list(kernel):
            _control(kernel, "delete_subshell_request", {"subshell_id": subshell_id})


@pytest.fixture
def two_subshells(kernel: KernelSession) -> Iterator[tuple[str, str]]:
    """Two subshells of the module's kernel, deleted after the test."""
    made = (_create(kernel), _create(kernel))
    try:
        yield made
    finally:
        for subshell_id in made:
            if subshell_id in _list(kernel):
                _control(kernel, "delete_subshell_request", {"subshell_id": subshell_id})


# --- lifetime -------------------------------------------------------------------------------


def test_kernel_info_lists_kernel_subshells(kernel: KernelSession) -> None:
    content = kernel.request("kernel_info_request")["content"]
    assert "kernel subshells" in content["supported_features"]
    assert content["protocol_version"] == "5.4"


def test_a_fresh_kernel_lists_no_subshells(fresh_kernel: KernelSession) -> None:
    assert _list(fresh_kernel) == []


def test_create_list_and_delete(kernel: KernelSession) -> None:
    before = _list(kernel)
    first, second = _create(kernel), _create(kernel)
    assert first != second
    assert _list(kernel) == [*before, first, second]
    assert _control(kernel, "delete_subshell_request", {"subshell_id": first}) == {"status": "ok"}
    assert _list(kernel) == [*before, second]
    _control(kernel, "delete_subshell_request", {"subshell_id": second})
    assert _list(kernel) == before


def test_subshell_requests_get_busy_and_idle_on_iopub(kernel: KernelSession) -> None:
    msg_id = kernel.send("create_subshell_request", channel="control")
    subshell_id = kernel.reply(msg_id, channel="control")["content"]["subshell_id"]
    kernel.iopub_until_idle(msg_id)
    assert _statuses_of(kernel, msg_id) == ["busy", "idle"]
    deleted = kernel.send(
        "delete_subshell_request", {"subshell_id": subshell_id}, channel="control"
    )
    kernel.reply(deleted, channel="control")
    kernel.iopub_until_idle(deleted)


@pytest.mark.parametrize("content", [{"subshell_id": "no-such-subshell"}, {}, {"subshell_id": 3}])
def test_deleting_an_unknown_subshell_is_an_error(
    kernel: KernelSession, content: dict[str, Any]
) -> None:
    reply = _control(kernel, "delete_subshell_request", content)
    assert reply["status"] == "error"
    assert reply["ename"] == "UnknownSubshellError"
    assert reply["evalue"]


def test_deleting_a_subshell_twice_is_an_error_the_second_time(kernel: KernelSession) -> None:
    subshell_id = _create(kernel)
    assert _control(kernel, "delete_subshell_request", {"subshell_id": subshell_id})["status"] == (
        "ok"
    )
    again = _control(kernel, "delete_subshell_request", {"subshell_id": subshell_id})
    assert again["status"] == "error"
    assert subshell_id in again["evalue"]


def test_a_subshell_is_a_caller_in_a_thread_of_its_own(
    kernel: KernelSession, subshell: str, backend: str
) -> None:
    execution = _execute(
        kernel,
        "import threading, sniffio\n"
        "from async_kernel import Caller\n"
        "(threading.current_thread().name, Caller.get().name, sniffio.current_async_library(),"
        " threading.current_thread() is threading.main_thread())",
        subshell,
    )
    name = _caller_name(subshell)
    assert _result(execution) == repr((name, name, backend, False))


def test_top_level_await_works_in_a_subshell(
    kernel: KernelSession, subshell: str, backend: str
) -> None:
    sleep = "anyio.sleep(0)" if backend == "asyncio" else "trio.sleep(0)"
    execution = _execute(
        kernel, f"import anyio, trio\nawait {sleep}\nawait anyio.sleep(0)\n7", subshell
    )
    assert _result(execution) == "7"


def test_deleting_a_subshell_stops_its_caller_and_thread(kernel: KernelSession) -> None:
    subshell_id = _create(kernel)
    name = _caller_name(subshell_id)
    thread_ident = _result(_execute(kernel, "import threading\nthreading.get_ident()", subshell_id))
    state = _caller_state(kernel)
    [row] = [c for c in state["callers"] if c["name"] == name]
    assert row["thread_id"] == int(thread_ident)
    _control(kernel, "delete_subshell_request", {"subshell_id": subshell_id})
    _wait_for_state(
        kernel,
        lambda s: (
            name not in {c["name"] for c in s["callers"]}
            and all(q["subshell_id"] != subshell_id for q in s["shell"]["queues"])
        ),
        "the deleted subshell's caller and queues gone",
    )
    alive = kernel.execute(
        f"import threading\n{int(thread_ident)} in {{t.ident for t in threading.enumerate()}}"
    )
    assert _result(alive) == "False"


def test_deleting_a_busy_subshell_answers_everything_it_held(
    kernel: KernelSession, hold: Callable[[], Hold]
) -> None:
    subshell_id = _create(kernel)
    latch = hold()
    running = _start(kernel, latch.awaiting, subshell_id)
    queued = [_execute_async(kernel, f"queued_{i} = True", subshell_id) for i in range(2)]
    _wait_until_queued(kernel, subshell_id, 2)
    _control(kernel, "delete_subshell_request", {"subshell_id": subshell_id})
    interrupted = kernel.collect(running)
    assert interrupted.status == "error"
    assert interrupted.content["ename"] == "KeyboardInterrupt"
    assert [kernel.collect(cell).status for cell in queued] == ["aborted", "aborted"]
    assert _result(kernel.execute("'queued_0' in globals()")) == "False"


def test_deleting_a_subshell_ends_an_input_its_cell_waits_for(kernel: KernelSession) -> None:
    subshell_id = _create(kernel)
    cell = _execute_async(kernel, "input('never answered: ')", subshell_id, allow_stdin=True)
    request = check_message(kernel.stdin_message(), "input_request", cell)
    assert request["parent_header"]["subshell_id"] == subshell_id
    _control(kernel, "delete_subshell_request", {"subshell_id": subshell_id})
    execution = kernel.collect(cell)
    assert execution.status == "error"
    assert execution.content["ename"] == "KeyboardInterrupt"


# --- requests addressed to subshells ----------------------------------------------------------


def test_every_message_of_a_subshell_request_carries_it_as_parent(
    kernel: KernelSession, subshell: str
) -> None:
    cell = _execute_async(kernel, "print('out')\n'result'", subshell)
    reply = kernel.reply(cell, msg_type="execute_reply")
    assert reply["parent_header"]["subshell_id"] == subshell
    assert reply["content"]["status"] == "ok"
    kernel.iopub_until_idle(cell)
    addressed = [m for m in kernel.iopub_log if m["parent_header"].get("msg_id") == cell]
    kinds = [m["msg_type"] for m in addressed]
    assert kinds[0] == "status"
    assert kinds[-1] == "status"
    assert {"execute_input", "stream", "execute_result"} <= set(kinds)
    for msg in addressed:
        assert msg["parent_header"]["subshell_id"] == subshell, msg


def test_a_silent_request_in_a_subshell_publishes_nothing_but_its_statuses(
    kernel: KernelSession, subshell: str
) -> None:
    before = kernel.execute("1").content["execution_count"]
    silent = _execute(kernel, "'not shown'", subshell, silent=True)
    assert silent.status == "ok"
    assert silent.iopub == []
    after = _execute(kernel, "2", subshell)
    assert after.content["execution_count"] == before + 1


def test_other_shell_requests_naming_a_subshell_are_answered(
    kernel: KernelSession, subshell: str
) -> None:
    for msg_type, content in {
        "kernel_info_request": {},
        "complete_request": {"code": "pri", "cursor_pos": 3},
        "is_complete_request": {"code": "x = ("},
    }.items():
        msg_id = _send(kernel, msg_type, content, subshell)
        reply = kernel.reply(msg_id, msg_type=msg_type.removesuffix("_request") + "_reply")
        assert reply["content"]["status"] in ("ok", "incomplete")
        assert reply["parent_header"]["subshell_id"] == subshell
        kernel.iopub_until_idle(msg_id)


@pytest.mark.parametrize("deleted", [False, True], ids=["never-created", "deleted"])
def test_an_execute_naming_an_unknown_subshell_gets_busy_an_error_reply_and_idle(
    kernel: KernelSession, deleted: bool
) -> None:
    subshell_id = str(uuid.uuid4())
    if deleted:
        subshell_id = _create(kernel)
        _control(kernel, "delete_subshell_request", {"subshell_id": subshell_id})
    cell = _execute_async(kernel, "ran_in_unknown = True", subshell_id)
    execution = kernel.collect(cell)
    assert execution.status == "error"
    assert execution.content["ename"] == "UnknownSubshellError"
    assert subshell_id in execution.content["evalue"]
    assert execution.iopub == []
    assert _statuses_of(kernel, cell) == ["busy", "idle"]
    assert _result(kernel.execute("'ran_in_unknown' in globals()")) == "False"


def test_other_requests_naming_an_unknown_subshell_get_an_error_reply(
    kernel: KernelSession,
) -> None:
    msg_id = _send(kernel, "kernel_info_request", {}, "no-such-subshell")
    reply = kernel.reply(msg_id, msg_type="kernel_info_reply")
    assert reply["content"]["ename"] == "UnknownSubshellError"
    kernel.iopub_until_idle(msg_id)


def test_variables_are_shared_both_ways(kernel: KernelSession, subshell: str) -> None:
    assert kernel.execute("from_main = 'main'").status == "ok"
    assert _result(_execute(kernel, "from_sub = from_main + ' seen by sub'\nfrom_sub", subshell))
    assert _result(kernel.execute("from_sub")) == "'main seen by sub'"


def test_requests_in_one_subshell_run_in_order(
    kernel: KernelSession, subshell: str, hold: Callable[[], Hold]
) -> None:
    latch = hold()
    kernel.execute("order = []")
    first = _start(kernel, latch.awaiting + "order.append(0)", subshell)
    rest = [_execute_async(kernel, f"order.append({i})", subshell) for i in range(1, 5)]
    _wait_until_queued(kernel, subshell, 4)
    assert not kernel.replied(first)
    latch.release()
    for cell in [first, *rest]:
        assert kernel.collect(cell).status == "ok"
    assert _result(kernel.execute("order")) == "[0, 1, 2, 3, 4]"


def test_two_subshells_run_at_the_same_time(
    kernel: KernelSession, two_subshells: tuple[str, str]
) -> None:
    kernel.execute(BARRIER_SETUP.format(timeout=TIMEOUT))
    cells = [_execute_async(kernel, BARRIER_WAIT, subshell_id) for subshell_id in two_subshells]
    assert [_result(kernel.collect(cell)) for cell in cells] == ["'passed'", "'passed'"]


def test_a_subshell_runs_while_the_main_shell_blocks(kernel: KernelSession, subshell: str) -> None:
    kernel.execute(BARRIER_SETUP.format(timeout=TIMEOUT))
    main = _start(kernel, BARRIER_WAIT, None)  # blocks the main thread in the barrier
    assert _result(_execute(kernel, BARRIER_WAIT, subshell)) == "'passed'"
    assert _result(kernel.collect(main)) == "'passed'"


def test_create_is_answered_while_the_main_shell_blocks_in_sleep(
    kernel: KernelSession, hold: Callable[[], Hold]
) -> None:
    latch = hold()
    main = _start(kernel, latch.blocking, None)
    try:
        subshell_id = _create(kernel)
        assert _result(_execute(kernel, "'answered'", subshell_id)) == "'answered'"
        assert subshell_id in _list(kernel)
        assert not kernel.replied(main), "the blocking cell ended early"
    finally:
        latch.release()
    assert kernel.collect(main).status == "ok"
    _control(kernel, "delete_subshell_request", {"subshell_id": subshell_id})


def test_execution_counts_stay_distinct_across_shells(
    kernel: KernelSession, two_subshells: tuple[str, str]
) -> None:
    """Cells of three shells at once: each gets a count of its own, shown in its execute_input
    and its reply, and `In[n]` is the input of the cell that got count n."""
    shells: list[str | None] = [None, *two_subshells]
    codes = [f"cell_{i} = {i}" for i in range(60)]
    cells = [_execute_async(kernel, code, shells[i % 3]) for i, code in enumerate(codes)]
    counts = []
    for cell in cells:
        execution = kernel.collect(cell)
        assert execution.status == "ok"
        counts.append(execution.content["execution_count"])
        [shown] = execution.outputs("execute_input")
        assert shown["content"]["execution_count"] == execution.content["execution_count"]
    assert len(set(counts)) == len(counts), sorted(counts)
    inputs = kernel.execute(f"[In[n] for n in {counts!r}] == {codes!r}")
    assert _result(inputs) == "True"


def test_inputs_stored_out_of_order_keep_their_place_in_the_input_history(
    fresh_kernel: KernelSession,
) -> None:
    """Cells of two shells may store their inputs in another order than their counts: `In[n]`
    is still the input of count n."""
    stored = fresh_kernel.execute(
        "_hm = get_ipython().history_manager\n"
        "_n = len(_hm.input_hist_parsed)\n"
        "_hm.store_inputs(_n + 1, 'second')\n"
        "_hm.store_inputs(_n, 'first')\n"
        "(_hm.input_hist_parsed[_n:], _hm.input_hist_raw[_n:])"
    )
    assert _result(stored) == "(['first', 'second'], ['first', 'second'])"


def test_a_subshells_result_shows_its_own_count(
    kernel: KernelSession, subshell: str, hold: Callable[[], Hold]
) -> None:
    """The main shell's held cell and the subshell's cell each display `Out[n]` with their own
    count, and `_n` names each result."""
    latch = hold()
    main = _start(kernel, latch.awaiting + "'main result'", None)
    sub = _execute(kernel, "'sub result'", subshell)
    latch.release()
    finished = kernel.collect(main)
    for execution, text in ((finished, "'main result'"), (sub, "'sub result'")):
        [result] = execution.outputs("execute_result")
        assert result["content"]["data"]["text/plain"] == text
        assert result["content"]["execution_count"] == execution.content["execution_count"]
    check = kernel.execute(
        f"_{sub.content['execution_count']}, _{finished.content['execution_count']}"
    )
    assert _result(check) == "('sub result', 'main result')"


def test_output_of_concurrent_cells_goes_to_each_cells_request(
    kernel: KernelSession, subshell: str, hold: Callable[[], Hold]
) -> None:
    latch = hold()
    printing = (
        "import os as _os, anyio as _anyio\n"
        f"while not _os.path.exists({str(latch.path)!r}):\n"
        "    print('main', end=' ')\n"
        "    await _anyio.sleep(0.005)\n"
    )
    main = _start(kernel, printing, None)
    sub = _execute(kernel, "for i in range(200):\n    print('sub', end=' ')", subshell)
    latch.release()
    finished = kernel.collect(main)
    assert set(sub.stream().split()) == {"sub"}
    assert set(finished.stream().split()) <= {"main"}


# --- stop on error ----------------------------------------------------------------------------


def test_an_error_aborts_only_its_own_subshells_queue(
    kernel: KernelSession, two_subshells: tuple[str, str], hold: Callable[[], Hold]
) -> None:
    failing_shell, other_shell = two_subshells
    latch = hold()
    failing = _start(kernel, latch.awaiting + "raise ValueError('in A')", failing_shell)
    behind = [_execute_async(kernel, f"behind_{i} = True", failing_shell) for i in range(2)]
    _wait_until_queued(kernel, failing_shell, 2)
    other_held = hold()
    other = _start(kernel, other_held.awaiting + "'B ok'", other_shell)
    other_behind = _execute_async(kernel, "'B behind ok'", other_shell)
    main_held = hold()
    main = _start(kernel, main_held.awaiting + "'main ok'", None)
    main_behind = kernel.execute_async("'main behind ok'")
    latch.release()
    assert kernel.collect(failing).content["ename"] == "ValueError"
    assert [kernel.collect(cell).status for cell in behind] == ["aborted", "aborted"]
    other_held.release()
    main_held.release()
    assert _result(kernel.collect(other)) == "'B ok'"
    assert _result(kernel.collect(other_behind)) == "'B behind ok'"
    assert _result(kernel.collect(main)) == "'main ok'"
    assert _result(kernel.collect(main_behind)) == "'main behind ok'"
    assert _result(_execute(kernel, "'A serves again'", failing_shell)) == "'A serves again'"


# --- the status rule ----------------------------------------------------------------------------


def test_busy_follows_a_subshells_idle_while_the_main_cell_runs(
    kernel: KernelSession, subshell: str, hold: Callable[[], Hold]
) -> None:
    latch = hold()
    main = _start(kernel, latch.blocking, None)
    try:
        sub = _execute_async(kernel, "1", subshell)
        kernel.reply(sub, msg_type="execute_reply")
        assert kernel.status_after_idle_of(sub) == ("busy", main)
    finally:
        latch.release()
    kernel.collect(main)
    last = [m for m in kernel.iopub_log if m["msg_type"] == "status"][-1]
    assert (last["content"]["execution_state"], last["parent_header"]["msg_id"]) == ("idle", main)


def test_busy_follows_the_main_cells_idle_while_a_subshell_cell_runs(
    kernel: KernelSession, subshell: str, hold: Callable[[], Hold]
) -> None:
    latch = hold()
    sub = _start(kernel, latch.awaiting, subshell)
    try:
        main = kernel.execute_async("1")
        kernel.reply(main, msg_type="execute_reply")
        assert kernel.status_after_idle_of(main) == ("busy", sub)
    finally:
        latch.release()
    kernel.collect(sub)
    last = [m for m in kernel.iopub_log if m["msg_type"] == "status"][-1]
    assert (last["content"]["execution_state"], last["parent_header"]["msg_id"]) == ("idle", sub)


# --- caller state and magics ------------------------------------------------------------------


def test_caller_state_shows_the_subshell_its_caller_and_queue(
    kernel: KernelSession, subshell: str, hold: Callable[[], Hold], backend: str
) -> None:
    latch = hold()
    cell = _start(kernel, latch.awaiting, subshell)
    queued = _execute_async(kernel, "'queued'", subshell)
    try:
        _wait_until_queued(kernel, subshell, 1)
        state = _caller_state(kernel)
        assert not kernel.replied(cell)
        callers = {row["name"]: row for row in state["callers"]}
        row = callers[_caller_name(subshell)]
        assert row["thread_name"] == _caller_name(subshell)
        assert row["backend"] == backend
        assert row["protected"] is True
        assert row["parent"] == "MainThread"
        execute = _queue(state, "execute_request", subshell)
        assert execute["running"] is True
        assert execute["running_for"] >= 0
        assert execute["pending"] == 1
        assert _queue(state, "comm_msg", subshell)["running"] is False
        main = _queue(state, "execute_request", None)
        assert main["running"] is False
        assert state["working"] is True  # the subshell's cell counts: the main shell is idle
    finally:
        latch.release()
    kernel.collect(cell)
    kernel.collect(queued)
    state = _wait_for_state(kernel, lambda s: s["working"] is False, "working became false")
    assert _queue(state, "execute_request", subshell)["running"] is False


def test_user_calls_on_a_subshell_caller_count_as_working(
    kernel: KernelSession, subshell: str, hold: Callable[[], Hold]
) -> None:
    latch = hold()
    _execute(
        kernel,
        "import os, anyio\nfrom async_kernel import Caller\n"
        "async def _wait_for_flag():\n"
        f"    while not os.path.exists({str(latch.path)!r}):\n"
        "        await anyio.sleep(0.005)\n"
        "_pending = Caller.get().call_soon(_wait_for_flag)",
        subshell,
    )
    try:
        assert _caller_state(kernel)["working"] is True
    finally:
        latch.release()
    _wait_for_state(kernel, lambda s: s["working"] is False, "working became false")


def test_callers_magic_shows_subshell_rows(kernel: KernelSession, subshell: str) -> None:
    shown = kernel.execute("%callers").stream()
    assert subshell in shown
    assert _caller_name(subshell) in shown


def test_subshell_magic_names_the_running_shell(kernel: KernelSession, subshell: str) -> None:
    in_main = kernel.execute("%subshell").stream()
    assert "subshell id: None" in in_main
    assert subshell in in_main  # the list
    in_sub = _execute(kernel, "%subshell", subshell).stream()
    assert f"subshell id: {subshell}" in in_sub
    assert f"caller: {_caller_name(subshell)}" in in_sub
    assert f"subshell list: {_list(kernel)!r}" in in_sub


# --- comms ----------------------------------------------------------------------------------

COMM_TARGET = """
import threading
handled_in = []
def _record_target(comm, open_msg):
    @comm.on_msg
    def _(msg):
        handled_in.append(threading.current_thread().name)
get_ipython().kernel.comm_manager.register_target('record-thread', _record_target)
"""


def _open_recording_comm(kernel: KernelSession) -> str:
    assert kernel.execute(COMM_TARGET).status == "ok"
    comm_id = uuid.uuid4().hex
    opened = kernel.send(
        "comm_open", {"comm_id": comm_id, "target_name": "record-thread", "data": {}}
    )
    kernel.iopub_until_idle(opened)
    return comm_id


def test_comm_messages_to_a_subshell_run_on_the_main_shell_by_default(
    kernel: KernelSession, subshell: str
) -> None:
    comm_id = _open_recording_comm(kernel)
    message = _send(kernel, "comm_msg", {"comm_id": comm_id, "data": {}}, subshell)
    kernel.iopub_until_idle(message)
    assert _statuses_of(kernel, message) == ["busy", "idle"]
    assert _result(kernel.execute("handled_in")) == "['MainThread']"


def test_comm_messages_run_in_the_subshell_when_the_kernel_is_told_to(
    kernel: KernelSession, subshell: str
) -> None:
    comm_id = _open_recording_comm(kernel)
    kernel.execute("get_ipython().kernel.comms_in_subshells = True")
    try:
        message = _send(kernel, "comm_msg", {"comm_id": comm_id, "data": {}}, subshell)
        kernel.iopub_until_idle(message)
    finally:
        kernel.execute("get_ipython().kernel.comms_in_subshells = False")
    assert _result(kernel.execute("handled_in")) == repr([_caller_name(subshell)])


@pytest.mark.parametrize("in_subshells", [False, True], ids=["main", "comms-in-subshells"])
def test_a_comm_close_naming_a_deleted_subshell_still_closes_the_comm(
    kernel: KernelSession, in_subshells: bool
) -> None:
    """JupyterLab may send comm_close with the id of a subshell it is deleting: the comm must
    close all the same (handled on the main shell), with its own busy and idle."""
    comm_id = _open_recording_comm(kernel)
    kernel.execute(f"get_ipython().kernel.comms_in_subshells = {in_subshells}")
    try:
        subshell_id = _create(kernel)
        _control(kernel, "delete_subshell_request", {"subshell_id": subshell_id})
        closing = _send(kernel, "comm_close", {"comm_id": comm_id, "data": {}}, subshell_id)
        kernel.iopub_until_idle(closing)
        assert _statuses_of(kernel, closing) == ["busy", "idle"]
    finally:
        kernel.execute("get_ipython().kernel.comms_in_subshells = False")
    still_open = kernel.execute(f"{comm_id!r} in get_ipython().kernel.comm_manager.comms")
    assert _result(still_open) == "False"


# --- stdin --------------------------------------------------------------------------------------


def test_input_in_a_subshell_asks_the_client_that_sent_the_cell(
    kernel: KernelSession, subshell: str
) -> None:
    """Two clients: one runs input() in the subshell, the other in the main shell, both at
    once; each input_request goes to the client whose cell asked, and each cell gets its own
    answer."""
    other = BlockingKernelClient()  # a Session (and zmq identity) of its own
    other.load_connection_info(kernel.manager.get_connection_info())
    other.start_channels(hb=False)
    try:
        other.wait_for_ready(timeout=TIMEOUT)
        in_sub = _execute_async(kernel, "sub_answer = input('sub? ')", subshell, allow_stdin=True)
        request = check_message(kernel.stdin_message(), "input_request", in_sub)
        assert request["parent_header"]["subshell_id"] == subshell
        in_main = other.execute("main_answer = input('main? ')", allow_stdin=True)
        other_request: Message = other.get_stdin_msg(timeout=TIMEOUT)
        assert other_request["parent_header"]["msg_id"] == in_main
        assert other_request["content"]["prompt"] == "main? "
        assert not kernel.client.stdin_channel.msg_ready()
        other.stdin_channel.send(
            other.session.msg("input_reply", {"value": "from main's client"}, parent=other_request)
        )
        kernel.answer_input(request, "from sub's client")
        assert kernel.collect(in_sub).status == "ok"
        reply = other.get_shell_msg(timeout=TIMEOUT)
        while reply["parent_header"].get("msg_id") != in_main:
            reply = other.get_shell_msg(timeout=TIMEOUT)
        assert reply["content"]["status"] == "ok"
    finally:
        other.stop_channels()
    check = kernel.execute("sub_answer, main_answer")
    assert _result(check) == '("from sub\'s client", "from main\'s client")'


# --- interrupts and shutdown ------------------------------------------------------------------


def test_an_interrupt_stops_every_shell_and_each_serves_on(
    fresh_kernel: KernelSession,
) -> None:
    kernel = fresh_kernel
    awaiting_shell, spinning_shell = _create(kernel), _create(kernel)
    main = _start(kernel, "import time\ntime.sleep(60)", None)
    awaiting = _start(kernel, "import anyio\nawait anyio.sleep(60)", awaiting_shell)
    spinning = _start(kernel, "while True:\n    pass", spinning_shell)
    reply = kernel.request("interrupt_request", channel="control")
    assert reply["content"] == {"status": "ok"}
    for cell in (main, awaiting, spinning):
        execution = kernel.collect(cell, timeout=30)
        assert execution.status == "error", execution.content
        assert execution.content["ename"] == "KeyboardInterrupt"
        [error] = execution.outputs("error")
        assert error["content"]["ename"] == "KeyboardInterrupt"
    for shell in (None, awaiting_shell, spinning_shell):
        assert _result(_execute(kernel, "1 + 1", shell)) == "2"


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
def test_an_interrupt_in_a_subshell_never_lands_inside_the_kernels_own_code(
    fresh_kernel: KernelSession, how: str
) -> None:
    """As in the main shell: a subshell cell that spends its time in async-kernel's code is
    interrupted in its own code every time, and output and callers work on afterwards."""
    kernel = fresh_kernel
    subshell_id = _create(kernel)
    for _ in range(8):
        cell = _start(kernel, KERNEL_CODE_LOOPS[how], subshell_id)
        kernel.send("interrupt_request", channel="control")
        execution = kernel.collect(cell, timeout=30)
        assert execution.status == "error", execution.content
        assert execution.content["ename"] == "KeyboardInterrupt"
    for shell in (subshell_id, None):
        after = _execute(
            kernel,
            "from async_kernel import Caller\n"
            "print('still', Caller.get(name='spin').call_soon(lambda: 'serving').wait_sync(10))",
            shell,
        )
        assert after.status == "ok", after.content
        assert after.stream("stdout") == "still serving\n"


def test_an_interrupt_in_a_subshell_never_lands_inside_the_import_machinery(
    fresh_kernel: KernelSession,
) -> None:
    """As in the main shell: a KeyboardInterrupt raised inside importlib could leave an import
    lock held by the subshell's thread, and the main shell's next import would wait forever."""
    kernel = fresh_kernel
    subshell_id = _create(kernel)
    for _ in range(8):
        cell = _start(kernel, IMPORTING, subshell_id)
        kernel.send("interrupt_request", channel="control")
        execution = kernel.collect(cell, timeout=30)
        assert execution.status == "error", execution.content
        assert execution.content["ename"] == "KeyboardInterrupt"
    for shell in (None, subshell_id):
        after = _execute(kernel, IMPORT_IN_ANOTHER_THREAD, shell)
        assert after.status == "ok", after.content
        assert after.stream("stdout") == "imports work\n"


def test_an_interrupt_aborts_the_cells_queued_in_each_subshell(
    fresh_kernel: KernelSession,
) -> None:
    kernel = fresh_kernel
    subshell_id = _create(kernel)
    running = _start(kernel, "import anyio\nawait anyio.sleep(60)", subshell_id)
    queued = _execute_async(kernel, "queued_ran = True", subshell_id)
    _wait_until_queued(kernel, subshell_id, 1)
    kernel.request("interrupt_request", channel="control")
    assert kernel.collect(running).content["ename"] == "KeyboardInterrupt"
    assert kernel.collect(queued).status == "aborted"


def test_shutdown_with_live_subshells_is_prompt(fresh_kernel: KernelSession) -> None:
    kernel = fresh_kernel
    idle_shell, busy_shell, spinning_shell = _create(kernel), _create(kernel), _create(kernel)
    assert idle_shell in _list(kernel)
    _start(kernel, "import anyio\nawait anyio.sleep(60)", busy_shell)
    _start(kernel, "while True:\n    pass", spinning_shell)
    _start(kernel, "import time\ntime.sleep(60)", None)
    started = time.monotonic()
    reply = kernel.request("shutdown_request", {"restart": False}, channel="control")
    assert reply["content"]["status"] == "ok"
    process = kernel.manager.provisioner.process  # type: ignore[union-attr]
    assert wait_for_exit(kernel.pid, 15), "the kernel did not exit"
    process.wait(timeout=5)
    assert process.returncode == 0, f"exit code {process.returncode}"
    assert time.monotonic() - started < 15
