"""Comms (ipywidgets and friends) through the `comm` package.

The kernel registers its Comm class and CommManager with `comm`, so libraries that call
`comm.create_comm()` publish over this kernel's iopub. Incoming comm messages are handled on the
shell thread (where user handlers expect to run) in their own queue, so they are processed while
a cell awaits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import comm
from comm.base_comm import BaseComm, BuffersType, CommManager, MaybeDict

from async_kernel._kernel.messaging import current_parent

if TYPE_CHECKING:
    from async_kernel._kernel.iostream import IOPub

__all__ = ["install_comms"]


class KernelComm(BaseComm):
    """A comm whose messages go out on the kernel's iopub."""

    iopub: IOPub | None = None  # set by install_comms

    def publish_msg(
        self,
        msg_type: str,
        data: MaybeDict = None,
        metadata: MaybeDict = None,
        buffers: BuffersType = None,
        **keys: Any,
    ) -> None:
        if self.iopub is None:
            return
        content = {"data": {} if data is None else data, "comm_id": self.comm_id, **keys}
        self.iopub.publish(
            msg_type,
            content,
            current_parent.get(),
            metadata=metadata,
            buffers=list(buffers) if buffers else None,
        )


def install_comms(iopub: IOPub) -> CommManager:
    """Make `comm.create_comm` / `comm.get_comm_manager` use this kernel; return the manager."""
    KernelComm.iopub = iopub
    manager = CommManager()

    def create_comm(*args: Any, **kwargs: Any) -> BaseComm:
        return KernelComm(*args, **kwargs)

    def get_comm_manager() -> CommManager:
        return manager

    comm.create_comm = create_comm
    comm.get_comm_manager = get_comm_manager
    return manager
