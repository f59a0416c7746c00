"""`%callers`: the kernel's Caller state, as the REST endpoint reports it; `%subshell`: which
subshell runs this cell, and the kernel's subshells."""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, line_magic, magics_class

from async_kernel.caller import Caller
from async_kernel.wire import CallerStateReply

if TYPE_CHECKING:
    from async_kernel._kernel.kernel import Kernel

__all__ = ["CallerMagics", "format_caller_state", "format_subshell"]


def format_caller_state(state: CallerStateReply) -> str:
    """A readable table of a `caller_state_reply` content."""
    working = state.get("working")
    lines = [
        f"pid {state['pid']}  backend {state['backend']}  started {state['started']}  "
        f"execution_count {state['execution_count']}  "
        f"working {'unknown' if working is None else str(working).lower()}",
        "",
        "shell queues:",
    ]
    for q in state["shell"]["queues"]:
        running = f"running for {q['running_for']:.3f}s" if q["running"] else "idle"
        shell = q.get("subshell_id") or "main"
        lines.append(f"  {shell:<36} {q['msg_type']:<18} pending {q['pending']:<4} {running}")
    lines += ["", "callers:"]
    header = f"  {'name':<28} {'backend':<8} {'state':<9} {'sched':>5} {'active':>6} {'idle-w':>6}"
    lines.append(header)
    for c in state["callers"]:
        flags = " protected" if c["protected"] else ""
        flags += " worker" if c["worker"] else ""
        lines.append(
            f"  {c['name']:<28} {c['backend']:<8} {c.get('state', ''):<9} {c['scheduled']:>5} "
            f"{c['active']:>6} {c['idle_workers']:>6}{flags}"
        )
        for cq in c["queues"]:
            running = "running" if cq["running"] else "idle"
            lines.append(f"      queue {cq['function']}: pending {cq['pending']}, {running}")
    return "\n".join(lines)


def format_subshell(kernel: Kernel) -> str:
    """What `%subshell` prints: the subshell of the calling thread (None for the main shell,
    `unknown` for a thread of neither) and the kernel's subshells, as ipykernel's `%subshell`
    does, with the caller that runs the thread. Any thread."""
    thread = threading.current_thread()
    try:
        caller: Caller | None = Caller.get(thread=thread)
    except RuntimeError:
        caller = None
    subshell = kernel.subshells.owner_of(caller)
    if subshell is not None:
        subshell_id: str | None = subshell.subshell_id
    else:
        shell = caller
        while shell is not None and shell is not kernel.shell_caller:
            shell = shell.parent
        subshell_id = None if shell is not None else "unknown"
    return "\n".join(
        [
            f"subshell id: {subshell_id}",
            f"caller: {None if caller is None else caller.name}",
            f"thread id: {thread.ident}",
            f"main thread id: {threading.main_thread().ident}",
            f"pid: {os.getpid()}",
            f"thread count: {threading.active_count()}",
            f"subshell list: {kernel.subshells.ids()}",
        ]
    )


@magics_class
class CallerMagics(Magics):
    """Magics that show what runs inside this kernel."""

    def __init__(self, shell: Any, kernel: Kernel) -> None:
        super().__init__(shell)
        self._kernel = kernel

    @line_magic
    def callers(self, line: str = "") -> dict[str, Any] | None:
        """Print the kernel's callers, threads and queues (`%callers --json` for the raw JSON).

        The same content the control channel's `caller_state_request` returns.
        """
        state = self._kernel.caller_state()
        if line.strip() == "--json":
            print(json.dumps(state, indent=2))
        else:
            print(format_caller_state(state))
        return None

    @line_magic
    def subshell(self, line: str = "") -> None:
        """Print the subshell running this cell (`None` for the main shell) and the kernel's
        subshells, with this thread and its caller."""
        print(format_subshell(self._kernel))
