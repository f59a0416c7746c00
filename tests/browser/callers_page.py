"""The project's JupyterLab extension as a page shows it: the status item and the panel.

Selectors (the extension's DOM contract, ``labextension/src``):

- the status bar item: ``.ak-StatusItem`` (registered as ``async-kernel:status``), text like
  ``⚙ 5 callers · 3 pending · cell 12 s``, ``no answer`` or ``not an async kernel``; the class
  ``ak-mod-warning`` for the warning look;
- the "Kernel Callers" panel: ``#async-kernel-callers``, opened by the command
  ``async-kernel:show-callers`` (or a click on the status item);
- in it, the server's kernels: ``.ak-KernelList tr[data-kernel-id="<id>"]`` (``ak-mod-selected``
  on the selected one, ``ak-mod-error`` on a failed snapshot, whose ``.ak-KernelError`` cell
  reads ``no answer`` for a kernel that did not answer in time);
- the selected kernel's callers: ``.ak-CallerTree li[data-caller-name="<name>"]``, each with its
  ``queue_call`` queues as ``.ak-CallerQueue`` rows; its shell queues: ``.ak-ShellQueues``; the
  copy button: ``.ak-CopyJson``.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

UI_TIMEOUT_MS = 20_000

STATUS_TEXT = re.compile(r"⚙\s*(\d+) callers? · (\d+) pending")
"""The status item's text for an async kernel (a ``· cell N s`` part follows while a cell runs);
groups: callers, pending. (Playwright hands patterns to the browser: JavaScript syntax.)"""


class CallersView:
    """The extension's status item and panel in one JupyterLab page."""

    def __init__(self, page: Page) -> None:
        self.page = page

    @property
    def status_item(self) -> Locator:
        """The status bar item (``async-kernel:status``)."""
        return self.page.locator(".ak-StatusItem")

    @property
    def panel(self) -> Locator:
        """The "Kernel Callers" panel."""
        return self.page.locator("#async-kernel-callers")

    def kernel_row(self, kernel_id: str) -> Locator:
        """The panel's list row of kernel `kernel_id`."""
        return self.panel.locator(f'.ak-KernelList tr[data-kernel-id="{kernel_id}"]')

    def caller(self, name: str) -> Locator:
        """The selected kernel's caller named `name`, in the panel's tree."""
        return self.panel.locator(f'.ak-CallerTree li[data-caller-name="{name}"]')

    def pending(self) -> int:
        """The pending count the status item shows now (it must show an async kernel)."""
        text = self.status_item.inner_text()
        match = STATUS_TEXT.search(text)
        assert match, f"status item reads {text!r}"
        return int(match[2])

    def expect_status(self, pattern: str | re.Pattern[str]) -> None:
        """Wait until the status item's text matches `pattern`."""
        expected = re.compile(pattern) if isinstance(pattern, str) else pattern
        expect(self.status_item).to_have_text(expected, timeout=UI_TIMEOUT_MS)

    def open_panel_from_status(self) -> None:
        """Click the status item: the panel opens."""
        self.status_item.click()
        expect(self.panel).to_be_visible(timeout=UI_TIMEOUT_MS)

    def open_panel_from_palette(self) -> None:
        """Run "Kernel Callers" from the command palette: the panel opens."""
        run_from_palette(self.page, "Kernel Callers")
        expect(self.panel).to_be_visible(timeout=UI_TIMEOUT_MS)


def run_from_palette(page: Page, label: str) -> None:
    """Open the command palette, find the command labelled `label` and run it."""
    page.keyboard.press("Control+Shift+C")
    palette = page.locator(".lm-CommandPalette").filter(visible=True)
    expect(palette).to_be_visible(timeout=UI_TIMEOUT_MS)
    palette.locator("input").fill(label)
    item = palette.locator(".lm-CommandPalette-item", has_text=label).first
    expect(item).to_be_visible(timeout=UI_TIMEOUT_MS)
    item.click()
