"""The JupyterLab extension: the status item and the "Kernel Callers" panel, live.

Each test drives a real JupyterLab in Debian's Chromium. Work is held by the test, never by time:
queued calls wait on a ``threading.Event`` that a later cell sets, and a kernel that must not
answer is stopped with SIGSTOP (and continued before it is shut down).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from callers_page import STATUS_TEXT, UI_TIMEOUT_MS, CallersView
from lab_harness import IPYKERNEL_SPEC, SPEC_NAMES, LabServer
from lab_page import open_notebook
from playwright.sync_api import Page, expect

QUEUE_WORK = """\
import threading
from async_kernel import Caller
gate = threading.Event()
probe = Caller.get(name={name!r}, backend={backend!r})
def job(number):
    gate.wait()
for number in range(4):
    probe.queue_call(job, number)
print("queued", flush=True)
"""

RELEASE = "gate.set()\nprint('released', flush=True)"

REST_TIMEOUT = 30.0


@pytest.mark.parametrize("backend", list(SPEC_NAMES))
def test_status_item_and_panel_show_a_named_caller_and_its_pending_work(
    backend: str,
    page: Page,
    lab_server: LabServer,
    workspace: str,
    shoot: Callable[[str], Path],
) -> None:
    name = f"ui-probe-{backend}"
    path = lab_server.create_notebook(f"callers-{backend}.ipynb", SPEC_NAMES[backend], ["", ""])
    notebook = open_notebook(page, lab_server, path, workspace=workspace)
    view = CallersView(page)

    view.expect_status(STATUS_TEXT)

    # Four calls queued on a named caller: one runs (held on the gate), three wait.
    notebook.set_cell(0, QUEUE_WORK.format(name=name, backend=backend))
    notebook.run_cell(0)
    expect(notebook.output(0)).to_contain_text("queued", timeout=UI_TIMEOUT_MS)
    # At least the three waiting calls (the kernel's own requests may add one for a moment).
    view.expect_status(re.compile(r"· ([3-9]|\d\d+) pending"))

    view.open_panel_from_status()
    row = view.kernel_row(notebook.kernel_id)
    expect(row).to_contain_class("ak-mod-selected", timeout=UI_TIMEOUT_MS)
    caller = view.caller(name)
    expect(caller).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(caller).to_contain_text(backend)
    queue = caller.locator(".ak-CallerQueue").first
    expect(queue).to_contain_text("job", timeout=UI_TIMEOUT_MS)
    expect(queue).to_contain_text(re.compile(r"pending\s*3"))
    expect(view.panel.locator(".ak-ShellQueues")).to_be_visible()
    shoot(f"{backend}-queued")

    # Release the work: the pending count falls back, and the queue empties in the panel.
    notebook.set_cell(1, RELEASE)
    notebook.run_cell(1)
    expect(notebook.output(1)).to_contain_text("released", timeout=UI_TIMEOUT_MS)
    view.expect_status(re.compile(r"· [0-2] pending"))
    expect(caller.locator(".ak-CallerQueue", has_text=re.compile(r"pending\s*3"))).to_have_count(
        0, timeout=UI_TIMEOUT_MS
    )
    shoot(f"{backend}-released")


@pytest.fixture
def stopped_kernel(lab_server: LabServer) -> Iterator[tuple[str, int]]:
    """A second async kernel, started over REST and then SIGSTOP'd; continued and shut down
    after the test, whatever happens."""
    kernel_id = str(lab_server.api("POST", "api/kernels", {"name": SPEC_NAMES["asyncio"]})["id"])
    pid = 0
    try:
        deadline = time.monotonic() + REST_TIMEOUT
        while not pid:
            rows = lab_server.api("GET", "api/async-kernel/kernels")["kernels"]
            row = next((r for r in rows if r["kernel_id"] == kernel_id), {})
            pid = int(row.get("pid") or 0)
            if not pid and time.monotonic() > deadline:
                raise AssertionError(f"kernel {kernel_id} reported no pid: {rows}")
            if not pid:
                # Poll interval of the list endpoint while the kernel starts.
                time.sleep(0.2)
        os.kill(pid, signal.SIGSTOP)
        yield kernel_id, pid
    finally:
        if pid:
            os.kill(pid, signal.SIGCONT)
        lab_server.api("DELETE", f"api/kernels/{kernel_id}")


def test_a_stopped_kernel_reads_no_answer_while_the_page_stays_live(
    page: Page,
    lab_server: LabServer,
    workspace: str,
    stopped_kernel: tuple[str, int],
    shoot: Callable[[str], Path],
) -> None:
    stopped_id, _ = stopped_kernel
    path = lab_server.create_notebook("live.ipynb", SPEC_NAMES["asyncio"], ["", ""])
    notebook = open_notebook(page, lab_server, path, workspace=workspace)
    view = CallersView(page)
    view.expect_status(STATUS_TEXT)

    view.open_panel_from_palette()
    stopped = view.kernel_row(stopped_id)
    expect(stopped).to_contain_class("ak-mod-error", timeout=UI_TIMEOUT_MS)
    expect(stopped.locator(".ak-KernelError")).to_contain_text("no answer")
    live = view.kernel_row(notebook.kernel_id)
    expect(live).not_to_contain_class("ak-mod-error")

    # The page and the other kernel stay responsive while one kernel does not answer.
    notebook.set_cell(0, "print(6 * 7)")
    notebook.run_cell(0)
    expect(notebook.output(0)).to_contain_text("42", timeout=UI_TIMEOUT_MS)
    view.expect_status(STATUS_TEXT)

    # Selecting the stopped kernel shows that its snapshot failed, in the panel.
    stopped.click()
    expect(stopped).to_contain_class("ak-mod-selected", timeout=UI_TIMEOUT_MS)
    expect(view.panel.locator(".ak-SnapshotError")).to_contain_text(
        "no answer", timeout=UI_TIMEOUT_MS
    )
    shoot("stopped-kernel")


def test_an_ipykernel_notebook_reads_not_an_async_kernel(
    page: Page,
    lab_server: LabServer,
    workspace: str,
    shoot: Callable[[str], Path],
) -> None:
    path = lab_server.create_notebook("native.ipynb", IPYKERNEL_SPEC, [""])
    notebook = open_notebook(page, lab_server, path, workspace=workspace)
    view = CallersView(page)

    view.expect_status("not an async kernel")
    expect(view.status_item).to_contain_class("ak-mod-other")
    view.open_panel_from_status()
    expect(view.kernel_row(notebook.kernel_id)).to_contain_text(
        "not an async kernel", timeout=UI_TIMEOUT_MS
    )
    shoot("ipykernel")
