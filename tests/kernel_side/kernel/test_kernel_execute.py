"""execute_request: counting, history, user expressions, errors and stop_on_error, awaits."""

from __future__ import annotations

import pytest
from kernel_harness import KernelSession

pytestmark = pytest.mark.timeout(60)


def test_execute_runs_code_and_counts(kernel: KernelSession) -> None:
    first = kernel.execute("a = 20")
    second = kernel.execute("a + 22")
    assert first.status == second.status == "ok"
    assert second.content["execution_count"] == first.content["execution_count"] + 1
    [execute_input] = second.outputs("execute_input")
    assert execute_input["content"] == {
        "code": "a + 22",
        "execution_count": second.content["execution_count"],
    }
    [result] = second.outputs("execute_result")
    assert result["content"]["data"]["text/plain"] == "42"
    assert result["content"]["execution_count"] == second.content["execution_count"]


def test_silent_execute_publishes_nothing_and_does_not_count(kernel: KernelSession) -> None:
    before = kernel.execute("1").content["execution_count"]
    silent = kernel.execute("print('quiet'); 6 * 7", silent=True)
    after = kernel.execute("2").content["execution_count"]
    assert silent.status == "ok"
    assert silent.outputs("execute_input") == []
    assert silent.outputs("execute_result") == []
    assert silent.content["execution_count"] == before
    assert after == before + 1


def test_silent_execute_reports_the_same_count_whatever_store_history_says(
    kernel: KernelSession,
) -> None:
    """The spec forces store_history to false for silent requests."""
    before = kernel.execute("1").content["execution_count"]
    with_flag = kernel.execute("pass", silent=True, store_history=True)
    without_flag = kernel.execute("pass", silent=True, store_history=False)
    assert with_flag.content["execution_count"] == before
    assert without_flag.content["execution_count"] == before
    assert kernel.execute("2").content["execution_count"] == before + 1


def test_store_history_false_neither_counts_nor_records(kernel: KernelSession) -> None:
    before = kernel.execute("1").content["execution_count"]
    unrecorded = kernel.execute("unrecorded_marker_7731 = 1", store_history=False)
    assert unrecorded.status == "ok"
    assert unrecorded.content["execution_count"] == before
    assert kernel.execute("2").content["execution_count"] == before + 1
    history = kernel.request(
        "history_request",
        {"hist_access_type": "tail", "n": 50, "raw": True, "output": False},
    )["content"]["history"]
    assert not any("unrecorded_marker_7731" in row[2] for row in history)


def test_user_expressions_are_evaluated_after_the_cell(kernel: KernelSession) -> None:
    execution = kernel.execute(
        "x = 6",
        user_expressions={"double": "x * 2", "broken": "1 / 0"},
    )
    expressions = execution.content["user_expressions"]
    assert expressions["double"]["status"] == "ok"
    assert expressions["double"]["data"]["text/plain"] == "12"
    assert expressions["broken"]["status"] == "error"
    assert expressions["broken"]["ename"] == "ZeroDivisionError"


def test_error_reply_and_error_message_carry_the_traceback(kernel: KernelSession) -> None:
    execution = kernel.execute("def f():\n    raise ValueError('boom')\nf()")
    assert execution.status == "error"
    assert execution.content["ename"] == "ValueError"
    assert execution.content["evalue"] == "boom"
    [error] = execution.outputs("error")
    assert error["content"]["ename"] == "ValueError"
    traceback = error["content"]["traceback"]
    assert isinstance(traceback, list)
    assert len(traceback) > 1
    assert any("boom" in line for line in traceback)


HELD_FAILURE = "input('held until the next requests are queued')\nraise RuntimeError('first')"
"""A failing cell that waits (in input()) until the test has queued requests behind it."""


def _fail_with_two_queued(kernel: KernelSession, *, stop_on_error: bool) -> tuple[str, str, str]:
    failing = kernel.execute_async(HELD_FAILURE, allow_stdin=True, stop_on_error=stop_on_error)
    request = kernel.stdin_message()
    second = kernel.execute_async("ran_second = 2")
    third = kernel.execute_async("ran_third = ran_second * 21")
    kernel.wait_until_queued(2)
    kernel.answer_input(request, "")
    return failing, second, third


def test_stop_on_error_aborts_the_requests_queued_behind_an_error(kernel: KernelSession) -> None:
    kernel.execute("ran_second = ran_third = None")
    failing, second, third = _fail_with_two_queued(kernel, stop_on_error=True)
    failed = kernel.collect(failing)
    assert failed.status == "error"
    for msg_id in (second, third):
        aborted = kernel.collect(msg_id)
        assert aborted.status == "aborted"
        assert aborted.content["execution_count"] == failed.content["execution_count"]
        assert aborted.iopub == [], "an aborted request ran"
    check = kernel.execute("ran_second, ran_third")
    assert check.status == "ok", "the abort outlived the requests queued behind the error"
    [result] = check.outputs("execute_result")
    assert result["content"]["data"]["text/plain"] == "(None, None)"


def test_stop_on_error_false_lets_queued_requests_run(kernel: KernelSession) -> None:
    failing, second, third = _fail_with_two_queued(kernel, stop_on_error=False)
    assert kernel.collect(failing).status == "error"
    assert kernel.collect(second).status == "ok"
    assert kernel.collect(third).status == "ok"
    check = kernel.execute("ran_third")
    assert check.outputs("execute_result")[0]["content"]["data"]["text/plain"] == "42"


def test_stop_on_error_aborts_only_what_was_queued(kernel: KernelSession) -> None:
    assert kernel.execute("raise RuntimeError('alone')").status == "error"
    assert kernel.execute("'runs'").status == "ok"


def test_exit_asks_the_client_to_shut_down_through_a_payload(kernel: KernelSession) -> None:
    execution = kernel.execute("exit()")
    assert execution.status == "ok"
    assert {"source": "ask_exit", "keepkernel": False} in execution.content["payload"]
    assert kernel.manager.is_alive()


def test_set_next_input_payload(kernel: KernelSession) -> None:
    execution = kernel.execute("get_ipython().set_next_input('next cell')")
    [payload] = execution.content["payload"]
    assert payload["source"] == "set_next_input"
    assert payload["text"] == "next cell"


def test_syntax_error_is_an_error_reply(kernel: KernelSession) -> None:
    execution = kernel.execute("def (:")
    assert execution.status == "error"
    assert execution.content["ename"] == "SyntaxError"
    assert len(execution.outputs("error")) == 1


class TestTopLevelAwait:
    """Cells can await with the kernel's own backend and with anyio on either."""

    OWN_BACKEND_CODE = {
        "asyncio": "import asyncio\nawait asyncio.sleep(0.1)\nasyncio.current_task() is not None",
        "trio": "import trio\nawait trio.sleep(0.1)\ntrio.lowlevel.current_task() is not None",
    }

    def test_await_with_the_kernels_own_backend(self, kernel: KernelSession, backend: str) -> None:
        execution = kernel.execute(self.OWN_BACKEND_CODE[backend])
        assert execution.status == "ok", execution.content
        assert execution.outputs("execute_result")[0]["content"]["data"]["text/plain"] == "True"

    def test_anyio_await_names_the_backend(self, kernel: KernelSession, backend: str) -> None:
        execution = kernel.execute(
            "import anyio, sniffio\n"
            "async with anyio.create_task_group() as tg:\n"
            "    tg.start_soon(anyio.sleep, 0.05)\n"
            "await anyio.sleep(0.05)\n"
            "sniffio.current_async_library()"
        )
        assert execution.status == "ok", execution.content
        data = execution.outputs("execute_result")[0]["content"]["data"]
        assert data["text/plain"] == repr(backend)

    def test_awaited_exception_is_an_error_reply(self, kernel: KernelSession) -> None:
        execution = kernel.execute(
            "import anyio\nasync def fail():\n    await anyio.sleep(0)\n    raise KeyError('k')\nawait fail()"
        )
        assert execution.status == "error"
        assert execution.content["ename"] == "KeyError"


def test_exception_group_from_a_task_group_is_an_error_with_its_traceback(
    kernel: KernelSession,
) -> None:
    execution = kernel.execute(
        "import anyio\n"
        "async def boom():\n"
        "    raise ValueError('in a task')\n"
        "async with anyio.create_task_group() as tg:\n"
        "    tg.start_soon(boom)"
    )
    assert execution.status == "error"
    assert execution.content["ename"] in ("ExceptionGroup", "BaseExceptionGroup")
    [error] = execution.outputs("error")
    assert error["content"]["ename"] == execution.content["ename"]
    assert any("in a task" in line for line in error["content"]["traceback"])


def test_unknown_magic_is_a_usage_error(kernel: KernelSession) -> None:
    execution = kernel.execute("%no_such_magic_qq")
    assert execution.status == "error"
    assert execution.content["ename"] == "UsageError"
    assert "no_such_magic_qq" in execution.content["evalue"]
