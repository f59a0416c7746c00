"""The IPython shell of the kernel: rich output, errors and payloads go to iopub.

`KernelShell` is IPython's InteractiveShell with its display hook, display publisher and
traceback display routed through the kernel's [IOPub][async_kernel.iostream.IOPub], each
message addressed to the request in the current context.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.payload import PayloadManager
from traitlets import Any as AnyTrait
from traitlets import Type

from async_kernel.messaging import Message, current_parent

if TYPE_CHECKING:
    from async_kernel.iostream import IOPub

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

    def _showtraceback(self, etype: Any, evalue: Any, stb: list[str]) -> None:
        content = {
            "ename": getattr(etype, "__name__", str(etype)),
            "evalue": str(evalue),
            "traceback": stb,
        }
        sys.stdout.flush()
        sys.stderr.flush()
        self.iopub.publish("error", content, self.parent_message())
        self.last_error = content

    def ask_exit(self) -> None:
        """`exit()` in a cell asks the client to shut the kernel down."""
        self.exit_now = True
        self.payloads().write_payload({"source": "ask_exit", "keepkernel": False})

    def set_next_input(self, s: str, replace: bool = False) -> None:
        self.payloads().write_payload({"source": "set_next_input", "text": s, "replace": replace})

    def payloads(self) -> PayloadManager:
        """The shell's payload manager (created by InteractiveShell's init)."""
        manager = self.payload_manager
        assert manager is not None
        return manager
