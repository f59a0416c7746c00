"""The jupyter_server extension application: configuration and handler registration."""

from __future__ import annotations

from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, TraitError, observe, validate

from async_kernel_server.activity import ActivityMonitor
from async_kernel_server.handlers import default_handlers
from async_kernel_server.metrics import KernelMetrics
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

    activity_interval = Float(
        60.0,
        config=True,
        help="""Seconds between passes of the activity monitor, which asks every async kernel
        for its caller state and treats a kernel whose user work is in flight (a cell or comm
        handler running, calls or queue items scheduled or running on any caller, to_thread
        workers included) as active, so that jupyter_server's idle culler and JupyterHub's keep
        it. The same snapshots feed the Prometheus gauges on /metrics. 0 turns the monitor
        off (and the gauges with it). Kernels that are not async kernels are never asked.""",
    )

    busy_is_activity = Bool(
        True,
        config=True,
        help="""Whether a kernel that the activity monitor finds working counts as active: its
        last_activity and the server's (what jupyter_server's culler and jupyterhub-singleuser
        read) are set to now on every pass that finds it working. With False the monitor only
        feeds the metrics, and a kernel busy in threads is culled as if idle.""",
    )

    snapshots: KernelSnapshots | None = None
    monitor: ActivityMonitor | None = None

    @validate("snapshot_timeout")
    def _validate_snapshot_timeout(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not value > 0:
            raise TraitError(f"AsyncKernelServer.snapshot_timeout must be > 0, not {value!r}")
        return value

    @validate("activity_interval")
    def _validate_activity_interval(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not value >= 0:
            raise TraitError(f"AsyncKernelServer.activity_interval must be >= 0, not {value!r}")
        return value

    @observe("snapshot_timeout")
    def _snapshot_timeout_changed(self, change: Any) -> None:
        if self.snapshots is not None:
            self.snapshots.timeout = change["new"]

    @observe("activity_interval", "busy_is_activity")
    def _monitor_config_changed(self, change: Any) -> None:
        if self.monitor is None:
            return
        if change["name"] == "activity_interval":
            self.monitor.interval = change["new"]
        else:
            self.monitor.busy_is_activity = change["new"]

    def initialize_settings(self) -> None:
        """Create the seam that asks the server's kernels, and the activity monitor."""
        assert self.serverapp is not None
        self.snapshots = KernelSnapshots(
            self.serverapp.kernel_manager, timeout=self.snapshot_timeout, log=self.log
        )
        self.monitor = ActivityMonitor(
            self.snapshots,
            interval=self.activity_interval,
            busy_is_activity=self.busy_is_activity,
            metrics=KernelMetrics(),
            log=self.log,
        )

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """jupyter_server's hook once its event loop runs: start the activity monitor."""
        if self.monitor is not None:
            self.monitor.start()

    def initialize_handlers(self) -> None:
        """Register the REST handlers (the server prefixes them with its base_url)."""
        self.handlers.extend(
            (pattern, handler, {"snapshots": self.snapshots})
            for pattern, handler in default_handlers
        )

    async def stop_extension(self) -> None:
        """Stop the activity monitor and close the control connections kept to kernels."""
        if self.monitor is not None:
            await self.monitor.stop()
        if self.snapshots is not None:
            self.snapshots.close()
