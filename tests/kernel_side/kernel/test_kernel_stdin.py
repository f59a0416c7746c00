"""input() and getpass() in cells: input_request on stdin, input_reply from the client."""

from __future__ import annotations

import pytest
from kernel_harness import KernelSession

pytestmark = pytest.mark.timeout(60)


def test_input_asks_the_client_and_returns_its_answer(kernel: KernelSession) -> None:
    cell = kernel.execute_async("name = input('Name? ')\nprint('hello', name)", allow_stdin=True)
    request = kernel.stdin_message()
    assert request["msg_type"] == "input_request"
    assert request["parent_header"]["msg_id"] == cell
    assert request["content"] == {"prompt": "Name? ", "password": False}
    kernel.answer_input(request, "world")
    execution = kernel.collect(cell)
    assert execution.status == "ok", execution.content
    assert execution.stream("stdout") == "hello world\n"


def test_getpass_asks_for_a_password(kernel: KernelSession) -> None:
    cell = kernel.execute_async(
        "import getpass\nsecret = getpass.getpass('Token: ')\nlen(secret)", allow_stdin=True
    )
    request = kernel.stdin_message()
    assert request["parent_header"]["msg_id"] == cell
    assert request["content"] == {"prompt": "Token: ", "password": True}
    kernel.answer_input(request, "s3cret")
    execution = kernel.collect(cell)
    assert execution.outputs("execute_result")[0]["content"]["data"]["text/plain"] == "6"


def test_several_inputs_in_one_cell(kernel: KernelSession) -> None:
    cell = kernel.execute_async(
        "a = input('a: ')\nb = input('b: ')\nprint(b + a)", allow_stdin=True
    )
    for value in ("1", "2"):
        request = kernel.stdin_message()
        kernel.answer_input(request, value)
    assert kernel.collect(cell).stream("stdout") == "21\n"


def test_output_before_input_reaches_the_client_first(kernel: KernelSession) -> None:
    cell = kernel.execute_async("print('about to ask')\ninput('? ')", allow_stdin=True)
    request = kernel.stdin_message()
    try:
        # What was printed before input() is published while the kernel waits for the answer
        # (in one or more stream messages), not held back until the cell ends.
        text = ""
        while text != "about to ask\n":
            assert "about to ask\n".startswith(text), text
            printed = kernel.iopub_matching(
                lambda m: m["msg_type"] == "stream" and m["parent_header"].get("msg_id") == cell,
                timeout=5,
                what="the output printed before input()",
            )
            text += printed["content"]["text"]
    finally:
        kernel.answer_input(request, "")
    assert kernel.collect(cell).status == "ok"


def test_input_without_allow_stdin_is_an_error(kernel: KernelSession) -> None:
    execution = kernel.execute("input('never asked: ')", allow_stdin=False)
    assert execution.status == "error"
    assert execution.content["ename"] == "StdinNotImplementedError"


def test_getpass_without_allow_stdin_is_an_error(kernel: KernelSession) -> None:
    execution = kernel.execute("import getpass\ngetpass.getpass()", allow_stdin=False)
    assert execution.status == "error"
    assert execution.content["ename"] == "StdinNotImplementedError"


# --- replies matched to the request they answer ---------------------------------------------


def test_an_input_reply_to_another_request_is_dropped(kernel: KernelSession) -> None:
    cell = kernel.execute_async("got = input('? ')\nprint('got', got)", allow_stdin=True)
    request = kernel.stdin_message()
    # A reply whose parent is some other message answers nothing: the input() keeps waiting.
    stray = kernel.client.session.msg("input_reply", {"value": "stray"}, parent={})
    kernel.client.stdin_channel.send(stray)
    unrelated = kernel.client.session.msg("kernel_info_request", {})
    kernel.client.stdin_channel.send(
        kernel.client.session.msg("input_reply", {"value": "wrong"}, parent=unrelated)
    )
    assert kernel.request("kernel_info_request")["content"]["status"] == "ok"
    assert not kernel.replied(cell)
    kernel.answer_input(request, "right")
    assert kernel.collect(cell).stream("stdout") == "got right\n"


def test_a_stale_reply_to_an_interrupted_input_is_not_taken_by_the_next_one(
    fresh_kernel: KernelSession,
) -> None:
    kernel = fresh_kernel
    first = kernel.execute_async("input('first? ')", allow_stdin=True)
    stale = kernel.stdin_message()
    kernel.request("interrupt_request", channel="control")
    assert kernel.collect(first).content["ename"] == "KeyboardInterrupt"
    second = kernel.execute_async("value = input('second? ')\nprint(value)", allow_stdin=True)
    current = kernel.stdin_message()
    assert current["parent_header"]["msg_id"] == second
    kernel.answer_input(stale, "stale answer")  # answers the interrupted input(): dropped
    assert kernel.request("kernel_info_request")["content"]["status"] == "ok"
    assert not kernel.replied(second)
    kernel.answer_input(current, "fresh answer")
    assert kernel.collect(second).stream("stdout") == "fresh answer\n"


def test_a_reply_racing_an_interrupt_gives_one_consistent_outcome(
    fresh_kernel: KernelSession,
) -> None:
    """The answer and the interrupt arrive together: input() either returns the answer or
    raises KeyboardInterrupt, and the cell's reply says which, every round."""
    kernel = fresh_kernel
    for round_ in range(10):
        cell = kernel.execute_async(
            f"race_value_{round_} = input('? ')\nprint('answered', race_value_{round_})",
            allow_stdin=True,
        )
        request = kernel.stdin_message()
        kernel.answer_input(request, f"v{round_}")
        kernel.send("interrupt_request", channel="control")
        execution = kernel.collect(cell)
        stdout = execution.stream("stdout")
        if execution.status == "ok":
            assert stdout == f"answered v{round_}\n"
        else:
            # Interrupted: during input() (no answer taken), or after it returned the answer
            # (then possibly in the middle of printing it).
            assert execution.content["ename"] == "KeyboardInterrupt"
            assert f"answered v{round_}\n".startswith(stdout), stdout
        taken = kernel.execute(f"globals().get('race_value_{round_}')")
        value = taken.outputs("execute_result")
        assert not value or value[0]["content"]["data"]["text/plain"] == f"'v{round_}'"
        kernel.sync()


def test_input_from_a_worker_thread_asks_the_cells_client(kernel: KernelSession) -> None:
    cell = kernel.execute_async(
        "from async_kernel import Caller\n"
        "value = await Caller.get().to_thread(input, 'from a worker? ')\n"
        "print('worker got', value)",
        allow_stdin=True,
    )
    request = kernel.stdin_message()
    assert request["parent_header"]["msg_id"] == cell
    assert request["content"]["prompt"] == "from a worker? "
    kernel.answer_input(request, "yes")
    execution = kernel.collect(cell)
    assert execution.status == "ok", execution.content
    assert execution.stream("stdout") == "worker got yes\n"


def test_input_from_a_plain_thread_asks_the_running_cells_client(kernel: KernelSession) -> None:
    cell = kernel.execute_async(
        "import threading\n"
        "answers = []\n"
        "t = threading.Thread(target=lambda: answers.append(input('thread? ')))\n"
        "t.start()\n"
        "t.join()\n"
        "answers",
        allow_stdin=True,
    )
    request = kernel.stdin_message()
    assert request["parent_header"]["msg_id"] == cell
    kernel.answer_input(request, "from thread")
    execution = kernel.collect(cell)
    assert execution.outputs("execute_result")[0]["content"]["data"]["text/plain"] == (
        "['from thread']"
    )


def test_input_with_no_cell_running_names_the_cause(kernel: KernelSession) -> None:
    """A comm handler runs while no cell does: there is no client to ask."""
    setup = (
        "late = []\n"
        "def asking_target(comm, open_msg):\n"
        "    try:\n"
        "        input('nobody to ask? ')\n"
        "    except Exception as e:\n"
        "        late.append(f'{type(e).__name__}: {e}')\n"
        "get_ipython().kernel.comm_manager.register_target('asking', asking_target)\n"
    )
    assert kernel.execute(setup).status == "ok"
    opened = kernel.send(
        "comm_open", {"comm_id": "asking-comm", "target_name": "asking", "data": {}}
    )
    kernel.iopub_until_idle(opened)
    result = kernel.execute("late")
    text = result.outputs("execute_result")[0]["content"]["data"]["text/plain"]
    assert "StdinNotImplementedError" in text
    assert "no cell is running" in text


def test_input_in_a_cell_without_allow_stdin_names_the_cause(kernel: KernelSession) -> None:
    execution = kernel.execute("input('never asked: ')", allow_stdin=False)
    assert execution.content["ename"] == "StdinNotImplementedError"
    assert "allow_stdin is false" in execution.content["evalue"]
