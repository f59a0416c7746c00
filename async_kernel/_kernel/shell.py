"""The IPython shell of the kernel: rich output, errors and payloads go to iopub.

`KernelShell` is IPython's InteractiveShell with its display hook, display publisher and
traceback display routed through the kernel's [IOPub][async_kernel._kernel.iostream.IOPub], each
message addressed to the request in the current context.
"""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING, Any

import anyio
from IPython.core import page
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.payload import PayloadManager
from traitlets import Any as AnyTrait
from traitlets import Type

from async_kernel._kernel.messaging import Message, current_parent

if TYPE_CHECKING:
    from async_kernel._kernel.iostream import IOPub

__all__ = ["KernelShell"]


class KernelDisplayHook(DisplayHook):
    """Publishes a cell's result as `execute_result`."""

    def start_displayhook(self) -> None:
        super().start_displayhook()
        self._content: dict[str, Any] = {"data": {}, "metadata": {}, "execution_count": 0}

    def write_output_prompt(self) -> None:
        self._content["execution_count"] = self.prompt_count

    def write_format_data(self, format_dict: dict[str, Any], md_dict: Any = None) -> None:
        self._content["data"] = format_dict
        self._content["metadata"] = md_dict or {}

    def finish_displayhook(self) -> None:
        shell: KernelShell = self.shell  # type: ignore[assignment]
        if self._content["data"]:
            shell.iopub.publish("execute_result", self._content, shell.parent_message())
        self._is_active = False


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
    kernel = AnyTrait(allow_none=True, help="The Kernel that owns this shell.")

    def __init__(self, *, iopub: IOPub, **kwargs: Any) -> None:
        self.iopub = iopub
        self.last_error: dict[str, Any] | None = None
        super().__init__(**kwargs)

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
