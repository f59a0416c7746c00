"""Keeping the kernel's own threads out of the debugger.

debugpy (pydevd) traces every thread and lists every thread in its `threads` replies, except
those marked as its own. The kernel marks each thread that runs no user code (the threads that
route messages, iopub, the heartbeat, the debugger's connection, the interrupt helpers) the way
pydevd marks its own, so a user debugging a cell sees the threads that run cells (the main shell,
subshells, threads the user started) and nothing of the kernel: its threads are neither traced
(no cost, no stop in them) nor listed.
"""

from __future__ import annotations

import threading

from async_kernel.caller import _DEBUGGER_MARKS

__all__ = ["hide_from_debugger"]


def hide_from_debugger(thread: threading.Thread | None) -> None:
    """Mark `thread` as the kernel's: pydevd neither traces nor lists it. Any thread; call it
    before the thread runs user code, ideally before it starts."""
    if thread is None:
        return
    for mark in _DEBUGGER_MARKS:
        setattr(thread, mark, True)
