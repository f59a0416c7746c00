"""Requests that run no user code are answered while a cell awaits or blocks the shell thread;
executes pipelined by the thousand are all answered, in order."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import zmq
from kernel_harness import Hold, KernelSession
from kernel_msgspec import check_message

pytestmark = pytest.mark.timeout(180)

HOW = ["awaiting", "blocking"]


def _wait_until_running(kernel: KernelSession, cell: str) -> None:
    kernel.iopub_matching(
        lambda m: m["parent_header"].get("msg_id") == cell and m["msg_type"] == "execute_input",
        what="the cell's execute_input",
    )


@pytest.mark.parametrize("how", HOW)
def test_kernel_info_is_answered_while_a_cell_runs(
    kernel: KernelSession, hold: Callable[[], Hold], how: str
) -> None:
    latch = hold()
    cell = kernel.execute_async(latch.code(how))
    _wait_until_running(kernel, cell)
    try:
        reply = kernel.request("kernel_info_request")
        assert reply["content"]["status"] == "ok"
        assert not kernel.replied(cell), "the held cell ended before kernel_info was answered"
    finally:
        latch.release()
    assert kernel.collect(cell).status == "ok"


@pytest.mark.parametrize("how", HOW)
def test_completion_and_inspection_are_answered_while_a_cell_runs(
    kernel: KernelSession, hold: Callable[[], Hold], how: str
) -> None:
    kernel.execute("responsive_name_one = 1")
    latch = hold()
    cell = kernel.execute_async(latch.code(how))
    _wait_until_running(kernel, cell)
    try:
        code = "responsive_name_o"
        complete = kernel.request("complete_request", {"code": code, "cursor_pos": len(code)})
        assert complete["content"]["matches"] == ["responsive_name_one"]
        inspect = kernel.request("inspect_request", {"code": "len", "cursor_pos": 1})
        assert inspect["content"]["found"] is True
        is_complete = kernel.request("is_complete_request", {"code": "x = ("})
        assert is_complete["content"]["status"] == "incomplete"
        assert not kernel.replied(cell), "the held cell ended before the requests were answered"
    finally:
        latch.release()
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


def test_no_reply_is_dropped_when_the_client_reads_slower_than_the_kernel_answers(
    fresh_kernel: KernelSession,
) -> None:
    """5,000 executes pipelined by a client that reads nothing until every cell has run: a
    zmq ROUTER drops what exceeds its send high-water mark, so the kernel must not have one.
    Rounds repeated; every reply counted."""
    kernel = fresh_kernel
    info = kernel.manager.get_connection_info()
    session = kernel.client.session
    context = zmq.Context()
    shell = context.socket(zmq.DEALER)
    shell.rcvhwm = 10  # a slow reader: little room on the client's side
    shell.setsockopt(zmq.RCVBUF, 4096)
    shell.connect(f"tcp://{info['ip']}:{info['shell_port']}")
    try:
        for round_ in range(2):
            ids = set()
            for i in range(5000):
                msg = session.msg(
                    "execute_request",
                    {"code": f"slow_reader_{round_} = {i}", "silent": True, "store_history": False},
                )
                ids.add(msg["header"]["msg_id"])
                session.send(shell, msg)
            kernel.wait_until_idle_queue(timeout=120)
            got = set()
            while len(got) < len(ids):
                assert shell.poll(30_000), f"round {round_}: {len(got)} of {len(ids)} replies"
                _, reply = session.feed_identities(shell.recv_multipart())
                parsed = session.deserialize(reply)
                assert parsed["msg_type"] == "execute_reply"
                got.add(parsed["parent_header"]["msg_id"])
            assert got == ids
    finally:
        shell.close(linger=0)
        context.term()
