"""Completion and inspection run user code in the introspection worker, never in the router.

jedi and IPython's inspector call the user's `__dir__`, `__getattr__`, properties and `__repr__`.
Those run in the `Introspection` caller's thread with a time limit, so a slow one neither stalls
routing (other requests, comms, input replies) nor leaves the client waiting, and nothing they
do changes the warnings state the running cell relies on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kernel_harness import KernelSession

pytestmark = pytest.mark.timeout(120)

STALLING = """
import threading

class Stalling:
    '''Listing its attributes (or its repr) waits until the test releases it.'''

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads = []

    def _stall(self):
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        self.release.wait(60)

    def __dir__(self):
        self._stall()
        return ["stalled_attribute"]

    def __repr__(self):
        self._stall()
        return "Stalling()"

stalling = Stalling()
"""


@pytest.fixture
def stalling(kernel: KernelSession) -> Iterator[KernelSession]:
    """The kernel with a `stalling` object; released and the time limit restored afterwards."""
    assert kernel.execute(STALLING).status == "ok"
    limit = kernel.execute("get_ipython().kernel.introspector.time_limit")
    saved = limit.outputs("execute_result")[0]["content"]["data"]["text/plain"]
    try:
        yield kernel
    finally:
        kernel.execute(
            f"stalling.release.set()\nget_ipython().kernel.introspector.time_limit = {saved}"
        )


def _set_time_limit(kernel: KernelSession, seconds: float) -> None:
    assert (
        kernel.execute(f"get_ipython().kernel.introspector.time_limit = {seconds}").status == "ok"
    )


def _value(kernel: KernelSession, expression: str) -> str:
    execution = kernel.execute(expression)
    assert execution.status == "ok", execution.content
    return str(execution.outputs("execute_result")[0]["content"]["data"]["text/plain"])


def test_a_stalled_completion_blocks_no_other_request(stalling: KernelSession) -> None:
    kernel = stalling
    _set_time_limit(kernel, 300)  # configuration: this request must wait for the release
    code = "stalling.sta"
    completion = kernel.send("complete_request", {"code": code, "cursor_pos": len(code)})
    assert _value(kernel, "stalling.entered.wait(30)") == "True"
    # While the user's __dir__ holds the completion, routing goes on: shell requests,
    # executes, stdin replies.
    assert kernel.request("kernel_info_request")["content"]["status"] == "ok"
    assert kernel.request("is_complete_request", {"code": "x = ("})["content"]["status"] == (
        "incomplete"
    )
    asking = kernel.execute_async("answer = input('? ')", allow_stdin=True)
    kernel.answer_input(kernel.stdin_message(), "routed")
    assert kernel.collect(asking).status == "ok"
    assert _value(kernel, "answer") == "'routed'"
    assert not kernel.replied(completion)
    kernel.execute("stalling.release.set()")
    reply = kernel.reply(completion, msg_type="complete_reply")
    assert "stalled_attribute" in "".join(reply["content"]["matches"])
    threads = _value(kernel, "sorted(set(stalling.threads))")
    assert threads.startswith("['Introspection"), threads


def test_a_completion_past_the_time_limit_gets_an_empty_answer(stalling: KernelSession) -> None:
    kernel = stalling
    _set_time_limit(kernel, 1)
    code = "stalling.sta"
    reply = kernel.request("complete_request", {"code": code, "cursor_pos": len(code)})
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["matches"] == []
    assert reply["content"]["cursor_start"] == reply["content"]["cursor_end"] == len(code)
    assert _value(kernel, "stalling.entered.is_set()") == "True"
    assert _value(kernel, "stalling.release.is_set()") == "False"
    # The stuck worker is left to the user's code; a fresh one answers the next request.
    _set_time_limit(kernel, 60)
    kernel.execute("introspection_target_gamma = 3")
    code = "introspection_target_g"
    after = kernel.request("complete_request", {"code": code, "cursor_pos": len(code)})
    assert after["content"]["matches"] == ["introspection_target_gamma"]


def test_an_inspection_past_the_time_limit_gets_not_found(stalling: KernelSession) -> None:
    kernel = stalling
    _set_time_limit(kernel, 1)
    reply = kernel.request(
        "inspect_request", {"code": "stalling", "cursor_pos": 3, "detail_level": 0}
    )
    assert reply["content"] == {"status": "ok", "found": False, "data": {}, "metadata": {}}
    kernel.execute("stalling.release.set()")
    _set_time_limit(kernel, 60)
    found = kernel.request("inspect_request", {"code": "len", "cursor_pos": 1})
    assert found["content"]["found"] is True


def test_a_completion_does_not_undo_a_warnings_filter_the_cell_sets(
    stalling: KernelSession,
) -> None:
    """The completion enters `warnings.catch_warnings()` (IPython's provisionalcompleter),
    stalls, the cell adds a filter meanwhile, then the completion leaves: the filter stays."""
    kernel = stalling
    _set_time_limit(kernel, 300)
    code = "stalling.sta"
    completion = kernel.send("complete_request", {"code": code, "cursor_pos": len(code)})
    cell = kernel.execute(
        "import warnings\n"
        "assert stalling.entered.wait(30)\n"
        "warnings.filterwarnings('error', message='marker-filter-7731')\n"
        "stalling.release.set()"
    )
    assert cell.status == "ok", cell.content
    kernel.reply(completion, msg_type="complete_reply")
    kept = _value(
        kernel,
        "any(f[1] is not None and f[1].pattern == 'marker-filter-7731' for f in warnings.filters)",
    )
    assert kept == "True"
    raised = kernel.execute("warnings.warn('marker-filter-7731')")
    assert raised.status == "error"
    assert raised.content["ename"] == "UserWarning"
    kernel.execute(
        "warnings.filters[:] = [f for f in warnings.filters if f[1] is None or f[1].pattern != 'marker-filter-7731']"
    )


def test_warnings_raised_by_introspection_do_not_reach_the_cell(kernel: KernelSession) -> None:
    setup = (
        "import warnings\n"
        "class Warns:\n"
        "    def __dir__(self):\n"
        "        warnings.warn('from introspection 5512')\n"
        "        return ['warned_attribute']\n"
        "warns = Warns()\n"
    )
    assert kernel.execute(setup).status == "ok"
    code = "warns.warn"
    reply = kernel.request("complete_request", {"code": code, "cursor_pos": len(code)})
    assert "warned_attribute" in "".join(reply["content"]["matches"])
    marker = kernel.execute("print('marker')")
    assert "from introspection 5512" not in marker.stream("stderr")
    published = [m for m in kernel.iopub_log if m["msg_type"] in ("stream", "error")]
    assert not any("from introspection 5512" in str(m["content"]) for m in published), (
        "a warning raised by introspection was published"
    )
