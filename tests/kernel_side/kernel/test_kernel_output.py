"""Rich output and streams: what a cell displays reaches iopub, addressed to that cell."""

from __future__ import annotations

import pytest
from kernel_harness import KernelSession

pytestmark = pytest.mark.timeout(60)


def test_execute_result_has_every_mime_type_of_the_repr(kernel: KernelSession) -> None:
    execution = kernel.execute(
        "class Both:\n"
        "    def _repr_html_(self):\n"
        "        return '<b>both</b>'\n"
        "    def __repr__(self):\n"
        "        return 'Both()'\n"
        "Both()"
    )
    [result] = execution.outputs("execute_result")
    assert result["content"]["data"] == {"text/plain": "Both()", "text/html": "<b>both</b>"}
    assert result["content"]["execution_count"] == execution.content["execution_count"]


def test_display_publishes_display_data(kernel: KernelSession) -> None:
    execution = kernel.execute(
        "from IPython.display import display, HTML\ndisplay(HTML('<i>hi</i>'), metadata={'k': 1})"
    )
    [shown] = execution.outputs("display_data")
    assert shown["content"]["data"]["text/html"] == "<i>hi</i>"
    assert "text/plain" in shown["content"]["data"]
    assert execution.outputs("execute_result") == []


def test_display_id_then_update_publishes_update_display_data(kernel: KernelSession) -> None:
    execution = kernel.execute(
        "from IPython.display import display\n"
        "handle = display('first', display_id=True)\n"
        "handle.update('second')"
    )
    [shown] = execution.outputs("display_data")
    [updated] = execution.outputs("update_display_data")
    display_id = shown["content"]["transient"]["display_id"]
    assert isinstance(display_id, str)
    assert display_id
    assert updated["content"]["transient"]["display_id"] == display_id
    assert shown["content"]["data"]["text/plain"] == "'first'"
    assert updated["content"]["data"]["text/plain"] == "'second'"


def test_update_from_a_later_cell_is_addressed_to_that_cell(kernel: KernelSession) -> None:
    first = kernel.execute("from IPython.display import display\nh = display(1, display_id=True)")
    later = kernel.execute("h.update(2)")
    [updated] = later.outputs("update_display_data")
    [shown] = first.outputs("display_data")
    assert updated["parent_header"]["msg_id"] == later.msg_id
    assert updated["content"]["transient"] == shown["content"]["transient"]


@pytest.mark.parametrize("wait", [False, True])
def test_clear_output(kernel: KernelSession, wait: bool) -> None:
    execution = kernel.execute(
        f"from IPython.display import clear_output\nprint('gone')\nclear_output(wait={wait})"
    )
    types = [m["msg_type"] for m in execution.iopub]
    assert types == ["execute_input", "stream", "clear_output"]
    assert execution.outputs("clear_output")[0]["content"] == {"wait": wait}


def test_error_message_precedes_the_idle_status(kernel: KernelSession) -> None:
    execution = kernel.execute("print('before')\n1 / 0")
    types = [m["msg_type"] for m in execution.iopub]
    assert types == ["execute_input", "stream", "error"]
    error = execution.outputs("error")[0]["content"]
    assert error["ename"] == "ZeroDivisionError"
    assert all(isinstance(line, str) for line in error["traceback"])
    assert execution.content["traceback"] == error["traceback"]


def test_many_prints_become_few_stream_messages_in_order(kernel: KernelSession) -> None:
    execution = kernel.execute("for i in range(10000):\n    print(i)", timeout=60)
    streams = execution.outputs("stream")
    assert 1 <= len(streams) < 100, f"{len(streams)} stream messages for 10000 prints"
    assert execution.stream("stdout") == "".join(f"{i}\n" for i in range(10000))
    assert execution.iopub[-1]["msg_type"] == "stream", "output after the last stream message"


def test_stdout_and_stderr_keep_their_relative_order(kernel: KernelSession) -> None:
    execution = kernel.execute(
        "import sys\n"
        "print('out 1')\n"
        "print('err 1', file=sys.stderr)\n"
        "from IPython.display import display\n"
        "display('shown')\n"
        "print('out 2')"
    )
    sequence = [
        (m["msg_type"], m["content"].get("name"), m["content"].get("text"))
        for m in execution.iopub
        if m["msg_type"] in ("stream", "display_data")
    ]
    assert sequence[0][0] == "stream"
    assert [kind for kind, _, _ in sequence].index("display_data") > 0
    assert execution.stream("stdout") == "out 1\nout 2\n"
    assert execution.stream("stderr") == "err 1\n"
    before_display = sequence[: [kind for kind, _, _ in sequence].index("display_data")]
    assert "".join(text for _, name, text in before_display if name == "stdout") == "out 1\n"
    assert "".join(text for _, name, text in before_display if name == "stderr") == "err 1\n"


def test_print_from_a_thread_started_by_the_cell_reaches_the_cell(kernel: KernelSession) -> None:
    execution = kernel.execute(
        "import threading\n"
        "t = threading.Thread(target=print, args=('from a thread',))\n"
        "t.start()\n"
        "t.join()"
    )
    assert execution.stream("stdout") == "from a thread\n"
    for msg in execution.outputs("stream"):
        assert msg["parent_header"]["msg_id"] == execution.msg_id


def test_print_from_to_thread_reaches_the_cell(kernel: KernelSession) -> None:
    execution = kernel.execute(
        "from async_kernel import Caller\nawait Caller.get().to_thread(print, 'from to_thread')"
    )
    assert execution.status == "ok", execution.content
    assert execution.stream("stdout") == "from to_thread\n"


def test_print_from_call_soon_of_another_caller_reaches_the_cell(kernel: KernelSession) -> None:
    execution = kernel.execute(
        "from async_kernel import Caller\n"
        "other = Caller.get(name='printer', backend='asyncio')\n"
        "await other.call_soon(print, 'from another caller')\n"
        "other.stop()"
    )
    assert execution.status == "ok", execution.content
    assert execution.stream("stdout") == "from another caller\n"


def test_output_of_each_pipelined_cell_goes_to_its_own_request(kernel: KernelSession) -> None:
    ids = [kernel.execute_async(f"print('cell {i}')") for i in range(5)]
    for i, msg_id in enumerate(ids):
        assert kernel.collect(msg_id).stream("stdout") == f"cell {i}\n"


def test_a_cells_busy_comes_before_its_output_when_cells_follow_each_other(
    kernel: KernelSession,
) -> None:
    """Output the iopub thread flushes on its own timer never overtakes the busy of the next
    cell, which the shell thread published a moment earlier: every cell's messages run from
    its busy to its idle (`collect` checks that)."""
    code = "for _ in range(10_000):\n    print('x', end='')\nprint()"
    ids = [kernel.execute_async(code) for _ in range(100)]
    for msg_id in ids:
        assert kernel.collect(msg_id).stream("stdout") == "x" * 10_000 + "\n"
