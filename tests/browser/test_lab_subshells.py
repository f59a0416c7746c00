"""Subshells in JupyterLab: a subshell console beside a blocked notebook; widgets over subshells.

The kernel lists ``"kernel subshells"`` in ``supported_features``, so JupyterLab offers the
command; the console it opens sends its executes with a ``subshell_id``, which run in a subshell
thread while the notebook's cell blocks the main shell in ``time.sleep`` steps. The console sees
the notebook's variables (one namespace). And with JupyterLab's default of sending widget comm
messages over subshells, a slider still updates its output while a cell awaits. Cells are held
by a file the test creates.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from callers_page import UI_TIMEOUT_MS, run_from_palette
from lab_harness import SPEC_NAMES, LabServer
from lab_page import KernelTraffic, open_notebook
from playwright.sync_api import Page, expect

HELD_CELL = """\
import pathlib, time
answer = 41
release = pathlib.Path({release!r})
print("holding", flush=True)
while not release.exists():
    time.sleep(0.05)
print("released", flush=True)
"""


@pytest.mark.parametrize("backend", list(SPEC_NAMES))
def test_a_subshell_console_evaluates_while_the_notebook_blocks(
    backend: str,
    page: Page,
    lab_server: LabServer,
    workspace: str,
    kernel_traffic: KernelTraffic,
    shoot: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    release = tmp_path / "release"
    path = lab_server.create_notebook(f"subshell-{backend}.ipynb", SPEC_NAMES[backend], [""])
    notebook = open_notebook(page, lab_server, path, workspace=workspace)
    notebook.set_cell(0, HELD_CELL.format(release=str(release)))
    notebook.run_cell(0)
    expect(notebook.output(0)).to_contain_text("holding", timeout=UI_TIMEOUT_MS)

    try:
        mark = len(kernel_traffic.messages)
        run_from_palette(page, "New Subshell Console for Notebook")
        # The console sends its executes with the subshell's id once it has it: until the reply
        # arrives, an execute would go to the (blocked) main shell.
        deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
        while not [
            m for m in kernel_traffic.messages[mark:] if m.msg_type == "create_subshell_reply"
        ]:
            assert time.monotonic() < deadline, kernel_traffic.dump()
            # Poll interval of the recorded traffic, not a synchronisation point.
            page.wait_for_timeout(50)

        console = page.locator(".jp-CodeConsole").filter(visible=True)
        prompt = console.locator(".jp-CodeConsole-promptCell .cm-content")
        expect(prompt).to_be_visible(timeout=UI_TIMEOUT_MS)
        prompt.click()
        page.keyboard.type("answer + 1")
        page.keyboard.press("Shift+Enter")
        output = console.locator(".jp-OutputArea-output", has_text=re.compile(r"^\s*42\s*$"))
        expect(output).to_be_visible(timeout=UI_TIMEOUT_MS)
        # The notebook's cell is still the one running: the console did not wait for it.
        expect(notebook.prompt(0)).to_have_text("[*]:")
        shoot(f"{backend}-subshell-console")
    finally:
        release.touch()
    expect(notebook.output(0)).to_contain_text("released", timeout=UI_TIMEOUT_MS)


WIDGET_CELL = """\
import ipywidgets as widgets
slider = widgets.IntSlider(description="probe")
label = widgets.Label("v=0")
slider.observe(lambda change: setattr(label, "value", f"v={change['new']}"), names="value")
display(widgets.VBox([slider, label]))
"""

AWAITING_CELL = """\
import anyio, pathlib
release = pathlib.Path({release!r})
print("awaiting", flush=True)
while not release.exists():
    await anyio.sleep(0.05)
print("released", flush=True)
"""


@pytest.mark.parametrize("backend", list(SPEC_NAMES))
def test_a_widget_slider_updates_its_output_while_a_cell_awaits(
    backend: str,
    page: Page,
    lab_server: LabServer,
    workspace: str,
    kernel_traffic: KernelTraffic,
    shoot: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    """JupyterLab's default sends widget comm messages over per-target subshells (the kernel
    advertises them); the kernel runs them on the main shell's loop, live while a cell awaits."""
    release = tmp_path / "release"
    path = lab_server.create_notebook(f"widget-{backend}.ipynb", SPEC_NAMES[backend], ["", ""])
    notebook = open_notebook(page, lab_server, path, workspace=workspace)
    notebook.set_cell(0, WIDGET_CELL)
    notebook.run_cell(0)
    handle = notebook.output(0).locator(".noUi-handle")
    expect(handle).to_be_visible(timeout=UI_TIMEOUT_MS)
    label = notebook.output(0).locator(".widget-label", has_text=re.compile(r"^v="))
    expect(label).to_have_text("v=0", timeout=UI_TIMEOUT_MS)

    notebook.set_cell(1, AWAITING_CELL.format(release=str(release)))
    notebook.run_cell(1)
    try:
        expect(notebook.output(1)).to_contain_text("awaiting", timeout=UI_TIMEOUT_MS)
        handle.focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        expect(label).to_have_text("v=2", timeout=UI_TIMEOUT_MS)
        expect(notebook.prompt(1)).to_have_text("[*]:")
        shoot(f"{backend}-slider-while-awaiting")
    finally:
        release.touch()
    expect(notebook.output(1)).to_contain_text("released", timeout=UI_TIMEOUT_MS)
    sent = {m.msg_type for m in kernel_traffic.messages if m.direction == "sent"}
    # JupyterLab took its comms-over-subshells path: it asked for subshells for the comms.
    assert {"comm_msg", "create_subshell_request"} <= sent, kernel_traffic.dump()
