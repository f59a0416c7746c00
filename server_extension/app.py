"""The jupyter_server extension application: configuration and handler registration."""

from __future__ import annotations

from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, TraitError, observe, validate

from async_kernel_server.handlers import default_handlers
from async_kernel_server.snapshots import KernelSnapshots

__all__ = ["AsyncKernelServer"]


class AsyncKernelServer(ExtensionApp):
    """REST endpoints reporting, per running kernel, its callers, queues and what runs now.

    Loaded by jupyter_server as the ``async_kernel_server`` extension (enabled on install by
    ``jupyter-config/jupyter_server_config.d/async_kernel_server.json``). Adds
    ``GET {base_url}api/async-kernel/kernels`` and
    ``GET {base_url}api/async-kernel/kernels/{kernel_id}``; see the REST reference in the docs.
    """

    name = "async_kernel_server"
    description = "Caller state of async kernels over REST"
    load_other_extensions = True

    snapshot_timeout = Float(
        5.0,
        config=True,
        help="""Seconds one kernel may take to answer a snapshot request (the detail endpoint,
        or one row of the list endpoint) before the server gives up: 504 on the detail
        endpoint, an `error` row in the list. Kernels in the list are asked concurrently, each
        with this timeout, so the list answers within about this time however many kernels are
        stuck. Set it with `c.AsyncKernelServer.snapshot_timeout`.""",
    )

    snapshots: KernelSnapshots | None = None

    @validate("snapshot_timeout")
    def _validate_snapshot_timeout(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not value > 0:
            raise TraitError(f"AsyncKernelServer.snapshot_timeout must be > 0, not {value!r}")
        return value

    @observe("snapshot_timeout")
    def _snapshot_timeout_changed(self, change: Any) -> None:
        if self.snapshots is not None:
            self.snapshots.timeout = change["new"]

    def initialize_settings(self) -> None:
        """Create the seam that asks the server's kernels."""
        assert self.serverapp is not None
        self.snapshots = KernelSnapshots(
            self.serverapp.kernel_manager, timeout=self.snapshot_timeout, log=self.log
        )

    def initialize_handlers(self) -> None:
        """Register the REST handlers (the server prefixes them with its base_url)."""
        self.handlers.extend(
            (pattern, handler, {"snapshots": self.snapshots})
            for pattern, handler in default_handlers
        )

    async def stop_extension(self) -> None:
        """Close the control connections kept to kernels."""
        if self.snapshots is not None:
            self.snapshots.close()
