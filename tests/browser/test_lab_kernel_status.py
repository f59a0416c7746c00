"""The notebook's kernel status reads busy while a cell runs, even after another request.

The status-truth rule: while a cell runs, the last status the kernel published is ``busy``. A
completion answered meanwhile publishes its own ``busy``/``idle`` pair, so the kernel must follow
that ``idle`` with ``busy`` again (parent: the running execute); otherwise JupyterLab's indicator
and the server's ``execution_state`` read idle beside a running cell.

The kernel status is read where JupyterLab shows it: the status bar's kernel item (the session's
kernel status, i.e. the last iopub ``status``). The toolbar's execution indicator is not a kernel
status: it reads busy whenever the notebook has a cell running, so it is only checked alongside.

The test holds the cell itself: the cell waits for files the test creates, so nothing depends on
timing. Before the check, every request the page sent meanwhile (the completion, and whatever
JupyterLab sends after it) must have had its ``idle``; then a *ping* (a file the cell answers by
printing) is a barrier: once its output shows, JupyterLab has handled every kernel message sent
before it, those ``idle``s and the ``busy`` that must follow each of them included.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from lab_harness import SPEC_NAMES, LabServer
from lab_page import KernelTraffic, open_notebook
from playwright.sync_api import Page, expect

CELL = """\
import anyio, pathlib
ping, release = pathlib.Path({ping!r}), pathlib.Path({release!r})
print("started", flush=True)
pinged = False
while not release.exists():
    if not pinged and ping.exists():
        print("ping", flush=True)
        pinged = True
    await anyio.sleep(0.05)
print("released")
"""

COMPLETE = "pathl"
"""Typed into the second cell; Tab asks the kernel, whose match ``pathlib`` (imported by the
running cell) the completer offers; Enter accepts it. (JupyterLab then also sends an
``inspect_request`` to resolve the offered item's documentation.)"""

TIMEOUT_MS = 20_000


@pytest.mark.parametrize("backend", list(SPEC_NAMES))
def test_status_stays_busy_after_a_completion_while_a_cell_runs(
    backend: str,
    page: Page,
    lab_server: LabServer,
    kernel_traffic: KernelTraffic,
    workspace: str,
    shoot: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    kernel_name = SPEC_NAMES[backend]
    path = lab_server.create_notebook(f"status-{backend}.ipynb", kernel_name, cells=["", ""])
    notebook = open_notebook(page, lab_server, path, workspace=workspace)
    assert lab_server.kernel(notebook.kernel_id)["name"] == kernel_name
    ping, release = tmp_path / "ping", tmp_path / "release"

    # 1. Start the held cell; it is running once it printed "started".
    notebook.set_cell(0, CELL.format(ping=str(ping), release=str(release)))
    notebook.run_cell(0)
    expect(notebook.prompt(0)).to_have_text("[*]:", timeout=TIMEOUT_MS)
    expect(notebook.output(0)).to_contain_text("started", timeout=TIMEOUT_MS)
    notebook.expect_kernel_status("busy")
    notebook.expect_execution_indicator("busy")
    assert notebook.rest_state() == "busy"

    # 2. Ask the kernel for a completion in the next cell while the first one runs.
    notebook.type_in_cell(1, COMPLETE)
    mark = len(kernel_traffic.messages)
    notebook.press_tab(1)
    expect(notebook.completer).to_be_visible(timeout=TIMEOUT_MS)
    expect(notebook.completer.locator(".jp-Completer-item").first).to_contain_text(
        "pathlib", timeout=TIMEOUT_MS
    )
    shoot(f"{backend}-completer")
    page.keyboard.press("Enter")
    expect(notebook.editor(1)).to_have_text("pathlib", timeout=TIMEOUT_MS)
    expect(notebook.completer).to_be_hidden(timeout=TIMEOUT_MS)
    sent = [m.msg_type for m in kernel_traffic.messages[mark:] if m.direction == "sent"]
    assert "complete_request" in sent, kernel_traffic.dump()
    replies = kernel_traffic.find(lambda m: m.msg_type == "complete_reply")
    assert replies, f"no complete_reply reached the page:\n{kernel_traffic.dump()}"
    assert replies[-1].content.get("status") == "ok", replies[-1].content
    assert "pathlib" in replies[-1].content.get("matches", []), replies[-1].content
    kernel_traffic.wait_requests_idle(notebook.kernel_id, since=mark)

    # 3. Barrier: the cell prints "ping" once the file exists; when that output shows, the
    #    page has handled every kernel message sent before it.
    ping.touch()
    expect(notebook.output(0)).to_contain_text("ping", timeout=TIMEOUT_MS)
    expect(notebook.prompt(0)).to_have_text("[*]:")
    held_status = notebook.kernel_status()
    held_rest = notebook.rest_state()
    held_indicator = notebook.execution_indicator_status()
    statuses = [
        f"{m.content.get('execution_state')} (parent {m.parent_msg_type})"
        for m in kernel_traffic.messages[mark:]
        if m.msg_type == "status" and m.direction == "received"
    ]
    shoot(f"{backend}-held-after-completion")

    # 4. Release the cell: it finishes, and everything reads idle.
    release.touch()
    expect(notebook.output(0)).to_contain_text("released", timeout=TIMEOUT_MS)
    expect(notebook.prompt(0)).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=TIMEOUT_MS)
    notebook.expect_kernel_status("idle")
    notebook.expect_execution_indicator("idle")
    notebook.wait_rest_state("idle")
    shoot(f"{backend}-released")

    # The status-truth rule, checked last so that the steps above run (and show) either way.
    assert held_indicator == "busy", f"toolbar execution indicator read {held_indicator!r}"
    problems = []
    if held_status != "busy":
        problems.append(f"status bar kernel status read {held_status!r}")
    if held_rest != "busy":
        problems.append(f"GET /api/kernels/{{id}} execution_state was {held_rest!r}")
    assert not problems, (
        "while the cell was held running, after a completion was answered, expected busy but "
        f"the {'; the '.join(problems)}. iopub statuses since the completion: "
        f"{', '.join(statuses)}"
    )
