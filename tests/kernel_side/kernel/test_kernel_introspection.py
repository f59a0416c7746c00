"""complete, inspect, is_complete and history requests."""

from __future__ import annotations

from typing import Any

import pytest
from kernel_harness import KernelSession

pytestmark = pytest.mark.timeout(60)


def test_complete_offers_names_from_the_user_namespace(kernel: KernelSession) -> None:
    kernel.execute("completion_target_alpha = 1\ncompletion_target_beta = 2")
    code = "x = completion_target_"
    content = kernel.request("complete_request", {"code": code, "cursor_pos": len(code)})["content"]
    assert content["status"] == "ok"
    assert {"completion_target_alpha", "completion_target_beta"} <= set(content["matches"])
    assert content["cursor_start"] == len("x = ")
    assert content["cursor_end"] == len(code)
    types = content["metadata"]["_jupyter_types_experimental"]
    assert {t["text"] for t in types} >= {"completion_target_alpha", "completion_target_beta"}


def test_complete_attributes(kernel: KernelSession) -> None:
    code = "import os\nos.path.jo"
    content = kernel.request("complete_request", {"code": code, "cursor_pos": len(code)})["content"]
    assert "join" in content["matches"] or "os.path.join" in content["matches"]


def test_complete_with_nothing_to_offer(kernel: KernelSession) -> None:
    code = "zzz_no_such_name_qq"
    content = kernel.request("complete_request", {"code": code, "cursor_pos": len(code)})["content"]
    assert content["matches"] == []
    assert content["cursor_end"] == len(code)


def test_inspect_finds_the_docstring(kernel: KernelSession) -> None:
    kernel.execute("def documented():\n    'A unique docstring 9931.'\n")
    content = kernel.request(
        "inspect_request", {"code": "documented", "cursor_pos": 5, "detail_level": 0}
    )["content"]
    assert content["status"] == "ok"
    assert content["found"] is True
    assert "A unique docstring 9931." in content["data"]["text/plain"]


def test_inspect_detail_level_1_shows_the_source(kernel: KernelSession) -> None:
    kernel.execute("def with_source():\n    return 'source marker 5521'\n")
    content = kernel.request(
        "inspect_request", {"code": "with_source", "cursor_pos": 3, "detail_level": 1}
    )["content"]
    assert content["found"] is True
    assert "source marker 5521" in content["data"]["text/plain"]


def test_inspect_unknown_name_is_not_found(kernel: KernelSession) -> None:
    content = kernel.request(
        "inspect_request", {"code": "no_such_thing_qq", "cursor_pos": 3, "detail_level": 0}
    )["content"]
    assert content == {"status": "ok", "found": False, "data": {}, "metadata": {}}


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("x = 1", "complete"),
        ("print('hello')", "complete"),
        ("for i in range(3):", "incomplete"),
        ("def f(x):\n    return (x +", "incomplete"),
        ("x = [1,\n", "incomplete"),
        ("1 +* 2", "invalid"),
        ("x = )", "invalid"),
    ],
)
def test_is_complete(kernel: KernelSession, code: str, status: str) -> None:
    content = kernel.request("is_complete_request", {"code": code})["content"]
    assert content["status"] == status
    if status == "incomplete":
        assert isinstance(content["indent"], str)


def test_is_complete_indents_inside_a_block(kernel: KernelSession) -> None:
    content = kernel.request("is_complete_request", {"code": "if True:"})["content"]
    assert content == {"status": "incomplete", "indent": "    "}


def _history(kernel: KernelSession, **content: object) -> list[list[Any]]:
    request = {"raw": True, "output": False, **content}
    history = kernel.request("history_request", request)["content"]["history"]
    assert isinstance(history, list)
    return history


def test_history_tail_lists_the_latest_cells(kernel: KernelSession) -> None:
    codes = ["hist_tail_a = 1", "hist_tail_b = 2", "hist_tail_c = 3"]
    for code in codes:
        kernel.execute(code)
    history = _history(kernel, hist_access_type="tail", n=3)
    assert [row[2] for row in history] == codes
    sessions = {row[0] for row in history}
    assert len(sessions) == 1
    lines = [row[1] for row in history]
    assert lines == sorted(lines)
    assert len(set(lines)) == 3


def test_history_with_output_pairs_each_input_with_its_output(kernel: KernelSession) -> None:
    kernel.execute("40 + 2")
    [row] = _history(kernel, hist_access_type="tail", n=1, output=True)
    source, output = row[2]  # IPython logs outputs only with HistoryManager.db_log_output
    assert source == "40 + 2"
    assert output in (None, "42")


def test_history_range_of_this_session(kernel: KernelSession) -> None:
    first = kernel.execute("hist_range_a = 1").content["execution_count"]
    kernel.execute("hist_range_b = 2")
    history = _history(kernel, hist_access_type="range", session=0, start=first, stop=first + 2)
    assert [row[2] for row in history] == ["hist_range_a = 1", "hist_range_b = 2"]
    assert [row[1] for row in history] == [first, first + 1]


def test_history_search(kernel: KernelSession) -> None:
    kernel.execute("hist_search_token_4417 = 1")
    kernel.execute("hist_search_token_4417 += 1")
    kernel.execute("unrelated = 0")
    history = _history(kernel, hist_access_type="search", pattern="hist_search_token_4417*")
    assert [row[2] for row in history][-2:] == [
        "hist_search_token_4417 = 1",
        "hist_search_token_4417 += 1",
    ]
    assert all("hist_search_token_4417" in row[2] for row in history)
    limited = _history(kernel, hist_access_type="search", pattern="hist_search_token_4417*", n=1)
    assert [row[2] for row in limited] == ["hist_search_token_4417 += 1"]


def test_history_unknown_access_type_is_an_error_reply(kernel: KernelSession) -> None:
    reply = kernel.request(
        "history_request", {"hist_access_type": "sideways", "raw": True, "output": False}
    )
    assert reply["content"]["status"] == "error"


def test_history_range_numbers_rows_with_the_session_tail_reports(kernel: KernelSession) -> None:
    kernel.execute("hist_numbering = 1")
    [row] = _history(kernel, hist_access_type="tail", n=1)
    session, line = row[0], row[1]
    assert isinstance(session, int)
    assert session > 0
    [ranged] = _history(
        kernel, hist_access_type="range", session=session, start=line, stop=line + 1
    )
    assert ranged == [session, line, "hist_numbering = 1"]
    [current] = _history(kernel, hist_access_type="range", session=0, start=line, stop=line + 1)
    assert current == ranged


def test_question_mark_help_goes_to_the_pager_payload(kernel: KernelSession) -> None:
    execution = kernel.execute("len?")
    assert execution.status == "ok"
    [payload] = execution.content["payload"]
    assert payload["source"] == "page"
    assert payload["start"] == 0
    assert "Return the number of items" in payload["data"]["text/plain"]
    outputs = [m["msg_type"] for m in execution.iopub if m["msg_type"] != "execute_input"]
    assert outputs == [], "pager text was sent as cell output"
