"""Where a KeyboardInterrupt from an interrupt may land inside async-kernel's own code.

The kernel's SIGINT handler (`async_kernel._kernel.interrupts`) never raises KeyboardInterrupt
while the interrupted thread executes async-kernel's own code: an exception there could leave a
lock held, a wake-up flag set without its wake-up, or a message half published (and with it
every later message of its channel stalled). It waits until the code returns to the user's,
repeating the signal, with one exception: the blocking waits that user code calls (such as
`Pending.wait_sync`, which `input()` uses too), marked here with `interruptible`, so that a cell
blocked in one can be interrupted. Such a wait must be safe to leave by an exception at any
point of its body.

This module imports nothing: the Caller library marks its waits without loading the kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from types import CodeType
from typing import ParamSpec, TypeVar

__all__ = ["INTERRUPTIBLE", "interruptible"]

P = ParamSpec("P")
T = TypeVar("T")

INTERRUPTIBLE: set[CodeType] = set()
"""The code of the functions marked with `interruptible`."""


def interruptible(func: Callable[P, T]) -> Callable[P, T]:
    """Let an interrupt raise KeyboardInterrupt inside `func` (and what it calls).

    Mark only small functions that block and hold nothing an exception would leave broken.
    """
    INTERRUPTIBLE.add(func.__code__)
    return func
