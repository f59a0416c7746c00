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
