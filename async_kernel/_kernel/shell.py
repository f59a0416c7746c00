"""The IPython shell of the kernel: rich output, errors and payloads go to iopub.

`KernelShell` is IPython's InteractiveShell with its display hook, display publisher and
traceback display routed through the kernel's [IOPub][async_kernel._kernel.iostream.IOPub], each
message addressed to the request in the current context.

One shell serves the main shell and every subshell, whose cells may run at the same time in
different threads on the one user namespace (as in ipykernel). What InteractiveShell keeps for
"the running cell" is therefore kept per cell here, in context variables (a cell runs in its
shell's execute-queue context): the display hook's `ExecutionResult` and the prompt count it
derives from it (`Out[n]`, `_n`), the last error shown, and the payloads of the reply. Stored
cells take their execution count under a lock
([claim_execution_count][async_kernel._kernel.shell.KernelShell.claim_execution_count]), `In[n]`
stays the input of cell n however the shells' inputs interleave, and the builtin and display
traps count the cells inside them under a lock.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any

import anyio
from IPython.core import page
from IPython.core.builtin_trap import BuiltinTrap
from IPython.core.display_trap import DisplayTrap
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.history import HistoryManager
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.core.payload import PayloadManager
from traitlets import Any as AnyTrait
from traitlets import Type, observe

from async_kernel._kernel.debugger.cells import CellCompiler
from async_kernel._kernel.messaging import Message, current_parent

if TYPE_CHECKING:
    from async_kernel._kernel.iostream import IOPub

__all__ = ["KernelShell"]


_exec_result: contextvars.ContextVar[ExecutionResult | None] = contextvars.ContextVar(
    "async_kernel_exec_result", default=None
)
"""The ExecutionResult of the cell running in this context (IPython keeps one per shell)."""

_last_error: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "async_kernel_last_error", default=None
)
"""The `error` content last shown by the cell running in this context."""

_payloads: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "async_kernel_payloads", default=None
)
"""The payloads written by the cell running in this context, for its execute_reply."""


class KernelDisplayHook(DisplayHook):
    """Publishes a cell's result as `execute_result`.

    The result being displayed and the cell it belongs to are per thread and per cell (cells of
    several shells may display at once): `exec_result` lives in a context variable, the prompt
    count comes from it, and the content being built lives in a thread-local.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._building = threading.local()
        super().__init__(*args, **kwargs)

    @property
    def exec_result(self) -> ExecutionResult | None:
        """The ExecutionResult of the cell running in this context (set by IPython)."""
        return _exec_result.get()

    @exec_result.setter
    def exec_result(self, value: ExecutionResult | None) -> None:
        _exec_result.set(value)

    @property
    def prompt_count(self) -> int:
        """The running cell's own execution count when it is stored (IPython's is the shell's
        counter minus one, which another shell's cell may have moved on)."""
        result = _exec_result.get()
        info = None if result is None else result.info
        if result is not None and info is not None and info.store_history:
            count: int | None = result.execution_count
            if count:
                return count
        shell: Any = self.shell
        return int(shell.execution_count) - 1

    def start_displayhook(self) -> None:
        super().start_displayhook()
        self._building.content = {"data": {}, "metadata": {}, "execution_count": 0}

    def write_output_prompt(self) -> None:
        self._building.content["execution_count"] = self.prompt_count

    def write_format_data(self, format_dict: dict[str, Any], md_dict: Any = None) -> None:
        content = self._building.content
        content["data"] = format_dict
        content["metadata"] = md_dict or {}

    def finish_displayhook(self) -> None:
        shell: KernelShell = self.shell  # type: ignore[assignment]
        content = self._building.content
        self._building.content = None
        if content["data"]:
            shell.iopub.publish("execute_result", content, shell.parent_message())
        self._is_active = False


class LockedBuiltinTrap(BuiltinTrap):
    """IPython's builtin trap (it adds `get_ipython`, `exit`... to builtins while a cell runs),
    counting the cells inside it under a lock: cells of several shells enter and leave it at
    once, and a miscount would take the builtins away from a cell still running."""

    def __init__(self, shell: Any = None) -> None:
        self._trap_lock = threading.Lock()
        super().__init__(shell=shell)

    def __enter__(self) -> BuiltinTrap:
        with self._trap_lock:
            return super().__enter__()

    def __exit__(self, *exc_info: Any) -> Any:
        with self._trap_lock:
            return super().__exit__(*exc_info)


class LockedDisplayTrap(DisplayTrap):
    """IPython's display trap (it makes the shell's display hook `sys.displayhook` while a cell
    runs), counting the cells inside it under a lock, as `LockedBuiltinTrap` does."""

    def __init__(self, hook: Any = None) -> None:
        self._trap_lock = threading.Lock()
        super().__init__(hook=hook)

    def __enter__(self) -> Any:
        with self._trap_lock:
            return super().__enter__()

    def __exit__(self, *exc_info: Any) -> Any:
        with self._trap_lock:
            return super().__exit__(*exc_info)


class KernelHistoryManager(HistoryManager):
    """IPython's history manager, keeping `In[n]` (`input_hist_parsed`, `input_hist_raw`) at
    index n when cells of several shells store their inputs in another order than their counts
    (IPython appends each input, so its index is the count only when inputs come in order)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._order_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def store_inputs(self, line_num: int, source: str, source_raw: str | None = None) -> None:
        with self._order_lock:
            before = len(self.input_hist_parsed)
            super().store_inputs(line_num, source, source_raw)
            if before == line_num or len(self.input_hist_parsed) != before + 1:
                return  # in order (or not stored: an exit command)
            for inputs in (self.input_hist_parsed, self.input_hist_raw):
                stored = inputs.pop()
                inputs.extend([""] * (line_num + 1 - len(inputs)))  # cells still storing theirs
                inputs[line_num] = stored


class ContextPayloadManager(PayloadManager):
    """IPython's payload manager, with the payloads of each cell kept in its own context."""

    def write_payload(self, data: dict[str, Any], single: bool = True) -> None:
        if not isinstance(data, dict):
            raise TypeError(f"Each payload write must be a dict, got: {data!r}")
        payloads = _payloads.get()
        if payloads is None:
            payloads = []
            _payloads.set(payloads)
        source = data.get("source") if single else None
        if source is not None:
            for i, existing in enumerate(payloads):
                if existing.get("source") == source:
                    payloads[i] = data
                    return
        payloads.append(data)

    def read_payload(self) -> list[dict[str, Any]]:
        return list(_payloads.get() or ())

    def clear_payload(self) -> None:
        _payloads.set(None)


class KernelDisplayPublisher(DisplayPublisher):
    """Publishes `display_data`, `update_display_data` and `clear_output`."""

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        shell: KernelShell = self.shell
        content = {"data": data, "metadata": metadata or {}, "transient": transient or {}}
        msg_type = "update_display_data" if update else "display_data"
        shell.iopub.publish(msg_type, content, shell.parent_message())

    def clear_output(self, wait: bool = False) -> None:
        shell: KernelShell = self.shell
        shell.iopub.publish("clear_output", {"wait": wait}, shell.parent_message())


class KernelShell(InteractiveShell):
    """InteractiveShell for a kernel process: no terminal, output over the messaging protocol."""

    displayhook_class = Type(KernelDisplayHook)
    display_pub_class = Type(KernelDisplayPublisher)
    compiler_class = Type(CellCompiler)  # each cell runs as the file the debugger names
    kernel = AnyTrait(allow_none=True, help="The Kernel that owns this shell.")

    def __init__(self, *, iopub: IOPub, **kwargs: Any) -> None:
        self.iopub = iopub
        self._count_lock = threading.Lock()
        self._count_claim = threading.local()
        super().__init__(**kwargs)

    def init_builtins(self) -> None:
        super().init_builtins()
        self.builtin_trap = LockedBuiltinTrap(shell=self)

    def init_displayhook(self) -> None:
        super().init_displayhook()
        self.display_trap = LockedDisplayTrap(hook=self.displayhook)

    def init_history(self) -> None:
        self.history_manager = KernelHistoryManager(shell=self, parent=self)
        self.configurables.append(self.history_manager)  # type: ignore[arg-type]

    def init_payload(self) -> None:
        self.payload_manager = ContextPayloadManager(parent=self)
        self.configurables.append(self.payload_manager)  # type: ignore[arg-type]

    @property
    def last_error(self) -> dict[str, Any] | None:
        """The `error` content last shown by the cell running in this context."""
        return _last_error.get()

    @last_error.setter
    def last_error(self, value: dict[str, Any] | None) -> None:
        _last_error.set(value)

    # --- execution counts, with cells of several shells at once ------------------------------

    def claim_execution_count(self) -> int:
        """Hold the execution count for the stored cell about to run in this thread; return it.

        IPython's `run_cell_async` reads the counter and moves it on in two steps, and cells
        of other shells may start in between; between this call and that move (which releases
        the hold, in `_count_moved`) no other thread's cell can take the count. The hold is
        never kept across an await: `run_cell_async` moves the counter before its first one.
        Call `release_execution_count()` after the cell, whatever happens. Shell threads.
        """
        self._count_lock.acquire()
        claim = self._count_claim
        claim.held = True
        claim.count = None
        return int(self.execution_count)

    def release_execution_count(self) -> int | None:
        """End the hold of `claim_execution_count` if IPython has not (an empty cell, a cell
        that never started); return the count the cell took, or None if it took none. The
        thread that claimed; a no-op elsewhere."""
        claim = self._count_claim
        if getattr(claim, "held", False):
            claim.held = False
            self._count_lock.release()
        count: int | None = getattr(claim, "count", None)
        claim.count = None
        return count

    @observe("execution_count")
    def _count_moved(self, change: dict[str, Any]) -> None:
        """IPython moved the counter on for the cell that holds it in this thread: that cell
        took the old value; let other threads' cells take theirs."""
        claim = self._count_claim
        if getattr(claim, "held", False):
            claim.count = change["old"]
            claim.held = False
            self._count_lock.release()

    def init_io(self) -> None:  # no terminal colours probing, no readline
        pass

    def init_virtualenv(self) -> None:  # the kernel's interpreter is what the spec chose
        pass

    def init_hooks(self) -> None:
        """IPython's hooks, with `obj?` and `%page` sent to the client's pager.

        They become a `page` payload of the execute_reply, which clients show in a pager and do
        not save in the notebook, as the messaging spec intends for introspection output.
        """
        super().init_hooks()
        self.set_hook("show_in_pager", page.as_hook(self._page), 99)

    def _page(self, strng: str | dict[str, Any], start: int = 0, *args: Any, **kwargs: Any) -> None:
        data = strng if isinstance(strng, dict) else {"text/plain": strng}
        self.payloads().write_payload({"source": "page", "data": data, "start": max(0, start)})

    def enable_gui(self, gui: str | None = None) -> None:
        """No GUI event loop integration: the kernel's loop is asyncio or trio."""
        if gui:
            raise NotImplementedError(
                f"GUI event loop integration ({gui!r}) is not supported by async-kernel; "
                "use an inline backend, e.g. %matplotlib inline"
            )

    def parent_message(self) -> Message | None:
        """The request that output from this context answers."""
        parent = current_parent.get()
        if parent is None and self.kernel is not None:
            parent = self.kernel.last_execute_parent
        return parent

    def showtraceback(
        self,
        exc_tuple: tuple[type[BaseException], BaseException, Any] | None = None,
        filename: str | None = None,
        tb_offset: int | None = None,
        exception_only: bool = False,
        running_compiled_code: bool = False,
    ) -> None:
        """IPython's, but exception groups (from task groups) are published as errors too.

        IPython only prints those to stderr, which would leave the cell with no error output.
        """
        try:
            etype, value, tb = self._get_exc_info(exc_tuple)
        except ValueError:
            etype = value = tb = None
        if value is not None and not exception_only and _contains_exception_group(value):
            text = "".join(traceback.format_exception(etype, value, tb))
            self._showtraceback(etype, value, text.splitlines())
            return
        super().showtraceback(exc_tuple, filename, tb_offset, exception_only, running_compiled_code)

    def _showtraceback(self, etype: Any, evalue: Any, stb: list[str]) -> None:
        if self._cancelled_by_interrupt(evalue):
            # The interrupt of an awaiting cell cancels it; show it as for a blocking cell.
            tb = evalue.__traceback__
            etype, evalue = KeyboardInterrupt, KeyboardInterrupt()
            stb = self.InteractiveTB.structured_traceback(etype, evalue, tb)
        content = {
            "ename": getattr(etype, "__name__", str(etype)),
            "evalue": str(evalue),
            "traceback": stb,
        }
        sys.stdout.flush()
        sys.stderr.flush()
        self.iopub.publish("error", content, self.parent_message())
        self.last_error = content

    def _cancelled_by_interrupt(self, evalue: Any) -> bool:
        kernel = self.kernel
        if kernel is None or not kernel.interrupts.cancelled:
            return False
        try:
            return isinstance(evalue, anyio.get_cancelled_exc_class())
        except Exception:  # no async library detected in this context
            return False

    def ask_exit(self) -> None:
        """`exit()` in a cell asks the client to shut the kernel down."""
        self.exit_now = True
        self.payloads().write_payload({"source": "ask_exit", "keepkernel": False})

    def set_next_input(self, s: str, replace: bool = False) -> None:
        self.payloads().write_payload({"source": "set_next_input", "text": s, "replace": replace})

    def payloads(self) -> PayloadManager:
        """The shell's payload manager (created by InteractiveShell's init)."""
        manager = self.payload_manager
        assert isinstance(manager, PayloadManager)
        return manager


def _contains_exception_group(value: BaseException | None) -> bool:
    """True if `value` or an exception in its `__context__` chain is an exception group."""
    while value is not None:
        if isinstance(value, BaseExceptionGroup):
            return True
        value = value.__context__
    return False
