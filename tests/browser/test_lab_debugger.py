"""The JupyterLab debugger on an async kernel: a breakpoint after an ``await`` stops the cell.

The kernel says ``debugger: true`` in ``kernel_info`` (its kernelspecs in ``metadata.debugger``),
so the notebook toolbar's bug button is enabled. The test turns the debugger on with it, sets a
breakpoint by clicking the breakpoint gutter beside the line after the cell's ``await``, runs
the cell and sees JupyterLab's debugger stopped there: the Callstack panel shows the cell's
frame at that line, the Variables panel (the frame's ``Locals``) lists ``x`` = 41 and no ``y``
yet, the line is highlighted and the notebook shows "Paused in Debugger". Meanwhile the kernel
still answers on its control channel (the panels' ``debug_request``s, and the server
extension's Caller snapshot over REST). Continue, the Callstack panel's button, lets the cell
finish with ``done 42`` and the kernel goes idle.

Selectors (JupyterLab 4.4+, ``@jupyterlab/debugger``, checked against the real DOM):

- the toolbar toggle: ``[data-jp-item-name="debugger-icon"] .jp-DebuggerBugButton`` (a
  ``jp-button`` with ``aria-disabled`` and ``aria-pressed``, ``"true"`` once the debugger is on);
- the sidebar ``#jp-debugger-sidebar``, an accordion whose section titles hold the toolbars:
  the Variables scope switcher ``[data-jp-item-name="scope-switcher"] select`` and the
  Callstack's ``[data-jp-item-name="continue"] [data-command="debugger:continue"]``;
- the Variables tree ``.jp-DebuggerVariables``: per variable a ``jp-tree-item`` holding
  ``.jp-DebuggerVariables-name`` and ``.jp-DebuggerVariables-detail`` (the value);
- the Callstack ``.jp-DebuggerCallstack``: frames ``.jp-DebuggerCallstackFrame`` with
  ``-name`` and ``-location`` (``<file>:<line>``); the Breakpoints ``.jp-DebuggerBreakpoint``
  with ``.jp-DebuggerBreakpoint-line``;
- in the cell's editor: the gutter ``.cm-gutter.cm-breakpoint-gutter`` (a mousedown beside a
  line toggles its breakpoint; a marker is a ``.cm-gutterElement`` holding a
  ``.cm-breakpoint-icon``, the gutter's hidden spacer holds one too); the stopped line is the
  ``.cm-line`` with ``jp-DebuggerEditor-highlight``; the overlay ``.jp-DebuggerPausedOverlay``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from lab_harness import SPEC_NAMES, LabServer
from lab_page import KernelMessage, KernelTraffic, Notebook, open_notebook
from playwright.sync_api import FloatRect, Locator, Page, expect

CELL = """\
import anyio
x = 41
await anyio.sleep(0)
y = x + 1
print("done", y)"""

BREAK_LINE = "y = x + 1"
BREAK_LINE_NUMBER = CELL.splitlines().index(BREAK_LINE) + 1

TIMEOUT_MS = 20_000

DEBUGGER_START_TIMEOUT_MS = 40_000
"""The first ``initialize``/``attach`` imports debugpy and starts its adapter in the kernel."""

HIGHLIGHT = "jp-DebuggerEditor-highlight"


def bug_button(notebook: Notebook) -> Locator:
    """The notebook toolbar's debugger toggle (the element with ``aria-pressed``)."""
    return notebook.panel.locator('[data-jp-item-name="debugger-icon"] .jp-DebuggerBugButton')


def variable_value(variables: Locator, name: str) -> Locator:
    """The value shown beside the variable called exactly `name` in the Variables tree."""
    return variables.locator(
        f'.jp-DebuggerVariables-name:text-is("{name}") + .jp-DebuggerVariables-detail'
    )


def box(locator: Locator) -> FloatRect:
    """`locator`'s bounding box (it must be laid out)."""
    rect = locator.bounding_box()
    assert rect is not None, f"{locator} is not laid out"
    return rect


def click_gutter_beside(page: Page, gutter: Locator, line: Locator) -> None:
    """Click `gutter` level with the editor line `line`, as a user sets a breakpoint (the
    gutter acts on the line block under the mousedown)."""
    gutter_box, line_box = box(gutter), box(line)
    page.mouse.click(
        gutter_box["x"] + gutter_box["width"] / 2, line_box["y"] + line_box["height"] / 2
    )


def level_with(a: Locator, b: Locator) -> bool:
    """Whether the vertical centre of `a` lies within `b`'s box."""
    a_box, b_box = box(a), box(b)
    middle = a_box["y"] + a_box["height"] / 2
    return b_box["y"] <= middle <= b_box["y"] + b_box["height"]


def is_stopped_event(message: KernelMessage) -> bool:
    """An iopub ``debug_event`` saying a thread stopped."""
    return message.msg_type == "debug_event" and message.content.get("event") == "stopped"


@pytest.mark.parametrize("backend", list(SPEC_NAMES))
def test_a_breakpoint_after_an_await_stops_the_cell_and_continue_finishes_it(
    backend: str,
    page: Page,
    lab_server: LabServer,
    workspace: str,
    kernel_traffic: KernelTraffic,
    shoot: Callable[[str], Path],
) -> None:
    path = lab_server.create_notebook(f"debugger-{backend}.ipynb", SPEC_NAMES[backend], [""])
    notebook = open_notebook(page, lab_server, path, workspace=workspace)

    # 1. Turn the debugger on with the toolbar's bug button: it reads pressed, and the sidebar
    #    opens on its panels.
    button = bug_button(notebook)
    expect(button).to_have_attribute("aria-disabled", "false", timeout=TIMEOUT_MS)
    expect(button).to_have_attribute("aria-pressed", "false")
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true", timeout=DEBUGGER_START_TIMEOUT_MS)
    sidebar = page.locator("#jp-debugger-sidebar")
    expect(sidebar).to_be_visible(timeout=TIMEOUT_MS)
    variables = sidebar.locator(".jp-DebuggerVariables")
    callstack = sidebar.locator(".jp-DebuggerCallstack")
    frames = callstack.locator(".jp-DebuggerCallstackFrame")
    expect(variables).to_be_visible(timeout=TIMEOUT_MS)
    expect(callstack).to_be_visible(timeout=TIMEOUT_MS)
    expect(frames).to_have_count(0)

    # 2. The cell, and a breakpoint beside the line after its await: the gutter shows a marker
    #    level with that line and the Breakpoints panel lists it.
    notebook.set_cell(0, CELL)
    line = notebook.editor(0).locator(".cm-line", has_text=BREAK_LINE)
    expect(line).to_have_count(1, timeout=TIMEOUT_MS)
    gutter = notebook.cell(0).locator(".cm-gutter.cm-breakpoint-gutter")
    expect(gutter).to_be_visible(timeout=TIMEOUT_MS)
    click_gutter_beside(page, gutter, line)
    marker = gutter.locator(".cm-gutterElement", has=page.locator(".cm-breakpoint-icon")).filter(
        visible=True
    )
    expect(marker).to_have_count(1, timeout=TIMEOUT_MS)
    assert level_with(marker, line), f"the breakpoint marker is not beside {BREAK_LINE!r}"
    breakpoints = sidebar.locator(".jp-DebuggerBreakpoints .jp-DebuggerBreakpoint")
    expect(breakpoints).to_have_count(1, timeout=TIMEOUT_MS)
    expect(breakpoints.locator(".jp-DebuggerBreakpoint-line")).to_have_text(
        str(BREAK_LINE_NUMBER), timeout=TIMEOUT_MS
    )
    shoot(f"{backend}-breakpoint-set")

    # 3. Run the cell: it stops at the breakpoint, after its await and before the line runs.
    mark = len(kernel_traffic.messages)
    notebook.run_cell(0)
    expect(frames).to_have_count(1, timeout=TIMEOUT_MS)
    expect(frames.locator(".jp-DebuggerCallstackFrame-name")).to_have_text("<module>")
    expect(frames.locator(".jp-DebuggerCallstackFrame-location")).to_have_text(
        re.compile(rf":{BREAK_LINE_NUMBER}$")
    )
    expect(line).to_contain_class(HIGHLIGHT, timeout=TIMEOUT_MS)
    expect(notebook.editor(0).locator(f".cm-line.{HIGHLIGHT}")).to_have_count(1)
    expect(notebook.panel.locator(".jp-DebuggerPausedOverlay")).to_be_visible(timeout=TIMEOUT_MS)
    # The Variables panel shows the stopped frame's scopes (before the stop it lists the
    # namespace under "Globals" alone), the first of them selected.
    scope = sidebar.locator('[data-jp-item-name="scope-switcher"] select')
    expect(scope).to_have_value("Locals", timeout=TIMEOUT_MS)
    expect(variable_value(variables, "x")).to_have_text("41", timeout=TIMEOUT_MS)
    expect(variable_value(variables, "y")).to_have_count(0)
    for ipython_name in ("In", "Out", "_ih", "exit"):  # the cell's Locals: the user namespace
        expect(variable_value(variables, ipython_name)).to_have_count(0)
    stopped = kernel_traffic.find(is_stopped_event)
    assert stopped, f"no stopped debug_event reached the page:\n{kernel_traffic.dump()}"
    assert stopped[-1].content["body"].get("reason") == "breakpoint", stopped[-1].content

    # The kernel stays responsive while the cell is stopped: it is busy with the cell, and it
    # answers on control (the Caller snapshot goes there; so did every debug_request above).
    expect(notebook.prompt(0)).to_have_text("[*]:")
    notebook.expect_kernel_status("busy")
    snapshot = lab_server.api("GET", f"api/async-kernel/kernels/{notebook.kernel_id}")
    assert snapshot["status"] == "ok", snapshot
    running = [q for q in snapshot["shell"]["queues"] if q["running"]]
    assert [q["msg_type"] for q in running] == ["execute_request"], snapshot["shell"]
    replies = [
        m.content
        for m in kernel_traffic.messages[mark:]
        if m.msg_type == "debug_reply" and m.direction == "received"
    ]
    commands = {r.get("command") for r in replies}
    assert {"stackTrace", "scopes", "variables"} <= commands, kernel_traffic.dump()
    failed = [r for r in replies if not r.get("success")]
    assert not failed, f"debug requests failed while stopped: {failed}"
    expect(notebook.output(0)).to_have_count(0)
    shoot(f"{backend}-paused")

    # 4. Continue (the Callstack panel's button): the cell finishes, the debugger shows
    #    nothing stopped and the kernel is idle.
    resume = sidebar.locator('[data-jp-item-name="continue"] [data-command="debugger:continue"]')
    expect(resume).to_have_attribute("title", re.compile(r"^Continue"), timeout=TIMEOUT_MS)
    resume.click()
    expect(notebook.output(0)).to_have_text(re.compile(r"^\s*done 42\s*$"), timeout=TIMEOUT_MS)
    expect(notebook.prompt(0)).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=TIMEOUT_MS)
    notebook.expect_kernel_status("idle")
    notebook.expect_execution_indicator("idle")
    notebook.wait_rest_state("idle")
    expect(frames).to_have_count(0, timeout=TIMEOUT_MS)
    expect(notebook.panel.locator(".jp-DebuggerPausedOverlay")).to_be_hidden(timeout=TIMEOUT_MS)
    expect(notebook.editor(0).locator(f".cm-line.{HIGHLIGHT}")).to_have_count(0)
    # The debugger is still on, its breakpoint kept.
    expect(button).to_have_attribute("aria-pressed", "true")
    expect(breakpoints).to_have_count(1)
    shoot(f"{backend}-continued")
