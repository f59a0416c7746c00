"""The activity monitor: user work running inside async kernels counts as kernel activity.

jupyter_server's idle culler (``MappingKernelManager.cull_idle_timeout``) and JupyterHub's idle
culler (from the ``last_activity`` jupyterhub-singleuser reports, which is the server's
``/api/status`` ``last_activity``) both decide from messages and API calls. Work that sends no
message — a cell that started ``Caller.to_thread(job)`` and returned, a task on a caller, a cell
that blocks without output — looks idle to both, and the kernel (or the whole server) is culled
in the middle of it.

Every ``interval`` seconds the monitor asks each async kernel for its caller state (the same
path as the REST endpoints: one kept control connection per kernel, untracked by the kernel
manager, each kernel with its own timeout, all concurrently) and, for every kernel whose reply
says ``working`` (see the kernel docs for the rule), sets the kernel's ``last_activity`` and the
kernel manager's ``last_kernel_activity`` to now. Kernels that are not working are left alone, so
idle kernels and idle servers are culled exactly as before. The same snapshots feed the
Prometheus gauges (`async_kernel_server.metrics`), so scraping adds no kernel traffic.

Which kernels it asks: those known to be async kernels without asking them (launched by this
project's provisioner, or from a kernelspec that runs ``python -m async_kernel``, or found out by
an earlier REST request). So it adds no traffic at all when no async kernel runs, and never
probes other kernels.

Thread model: everything runs in the server's asyncio event loop; a pass never blocks it (each
kernel's question is awaited with a timeout). Cancellation: ``stop()`` cancels the loop task; a
pass in progress is abandoned, its late replies dropped by the control connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from jupyter_server._tz import utcnow

from async_kernel_provisioner import AsyncKernelError, UnknownKernel
from async_kernel_server.metrics import KernelMetrics
from async_kernel_server.snapshots import KernelSnapshots

__all__ = ["ActivityMonitor", "KernelActivity"]


@dataclass(frozen=True)
class KernelActivity:
    """What one pass found out about one kernel."""

    kernel_id: str
    working: bool
    """The kernel's reply said ``working``."""
    touched: bool
    """Its ``last_activity`` was refreshed by this pass."""
    error: str | None = None
    """The class name of the error if its snapshot failed."""


class ActivityMonitor:
    """Refreshes the activity of working async kernels and feeds the metrics.

    Args:
        snapshots: the extension's seam to the kernels (shared with the REST handlers).
        interval: seconds between passes; 0 turns the monitor off.
        busy_is_activity: whether a working kernel's activity is refreshed (else the monitor
            only feeds the metrics).
        metrics: the Prometheus series to keep up to date.
        log: where to log.
    """

    def __init__(
        self,
        snapshots: KernelSnapshots,
        *,
        interval: float,
        busy_is_activity: bool,
        metrics: KernelMetrics | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.snapshots = snapshots
        self.interval = interval
        self.busy_is_activity = busy_is_activity
        self.metrics = metrics or KernelMetrics()
        self.log = log or logging.getLogger(__name__)
        self.passes = 0
        """Passes completed so far."""
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the monitor's loop task is running."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop in the running event loop, unless the interval is 0 or it runs.

        Call from the server's event loop."""
        if self.interval > 0 and not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="async_kernel_server activity monitor"
            )

    async def stop(self) -> None:
        """Stop the loop and wait until it has ended. Idempotent."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_pass(self) -> list[KernelActivity]:
        """One pass over the server's async kernels; returns what it found per kernel.

        Never raises for one kernel's failure (that kernel's ``error`` says what happened and
        the failure is counted in the metrics).
        """
        manager = self.snapshots.kernel_manager
        running = set(manager.list_kernel_ids())
        self.metrics.keep_only(running)
        asked = [k for k in running if self.snapshots.known_async(k)]
        results = await asyncio.gather(*(self._check(kernel_id) for kernel_id in asked))
        self.passes += 1
        return [r for r in results if r is not None]

    async def _check(self, kernel_id: str) -> KernelActivity | None:
        try:
            state, identity = await self.snapshots.caller_state(kernel_id)
        except UnknownKernel:  # shut down during the pass
            self.metrics.forget(kernel_id)
            return None
        except Exception as exc:
            if not isinstance(exc, AsyncKernelError):  # a bug of ours: log it, go on
                self.log.exception("async_kernel_server: activity check of %s failed", kernel_id)
            reason = type(exc).__name__
            self.metrics.failed(kernel_id, _kernel_name(self.snapshots, kernel_id), reason)
            return KernelActivity(kernel_id, working=False, touched=False, error=reason)
        working = bool(state.get("working", False))
        self.metrics.observe(kernel_id, str(identity.get("kernel_name") or ""), state)
        touched = working and self.busy_is_activity and self._touch(kernel_id)
        return KernelActivity(kernel_id, working=working, touched=touched)

    def _touch(self, kernel_id: str) -> bool:
        """Record activity now for the kernel and the kernel manager (what the cullers read)."""
        try:
            kernel = self.snapshots.manager_of(kernel_id)
        except UnknownKernel:
            return False
        now = utcnow()
        kernel.last_activity = now
        self.snapshots.kernel_manager.last_kernel_activity = now
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self.run_pass()
            except Exception:  # e.g. the kernel manager is shutting down: try again later
                self.log.exception("async_kernel_server: an activity pass failed")
            await asyncio.sleep(self.interval)


def _kernel_name(snapshots: KernelSnapshots, kernel_id: str) -> str:
    try:
        manager: Any = snapshots.manager_of(kernel_id)
    except UnknownKernel:
        return ""
    return str(getattr(manager, "kernel_name", "") or "")
