"""Prometheus metrics of async kernels, on jupyter_server's own ``/metrics``.

The gauges are fed by the activity monitor's snapshots (`async_kernel_server.activity`), so
scraping adds no traffic to any kernel; they are as fresh as the monitor's last pass. They live
in prometheus_client's default registry, which jupyter_server's ``/metrics`` handler serves
(authenticated as that handler is: ``ServerApp.authenticate_prometheus``).

Per kernel, labelled ``kernel_id`` and ``kernel_name``:

| metric | type | what |
| --- | --- | --- |
| ``async_kernel_callers`` | gauge | callers (event-loop threads) in the kernel |
| ``async_kernel_pending`` | gauge | waiting work: [pending_total][async_kernel.wire.pending_total] |
| ``async_kernel_working`` | gauge | 1 while user work is in flight (the reply's ``working``), else 0 |
| ``async_kernel_cell_running_seconds`` | gauge | seconds the running cell has run; 0 when none runs |
| ``async_kernel_snapshot_failures_total`` | counter | failed snapshots, by ``reason`` (the error's class) |

A kernel's series are removed when it leaves the kernel manager (at the monitor's next pass).

Thread model: call from the server's event loop (prometheus_client itself is thread-safe).
"""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge

from async_kernel.wire import CallerStateReply, pending_total

__all__ = ["KernelMetrics"]

_LABELS = ("kernel_id", "kernel_name")

# Module level: one set per process, however many server apps a process makes (tests do).
CALLERS = Gauge("async_kernel_callers", "Callers (event-loop threads) in the kernel.", _LABELS)
PENDING = Gauge("async_kernel_pending", "Work accepted and not started in the kernel.", _LABELS)
WORKING = Gauge("async_kernel_working", "1 while user work is in flight in the kernel.", _LABELS)
CELL_SECONDS = Gauge(
    "async_kernel_cell_running_seconds",
    "Seconds the kernel's running cell has run (0 when no cell runs).",
    _LABELS,
)
FAILURES = Counter(
    "async_kernel_snapshot_failures",
    "Snapshots of the kernel that failed, by reason.",
    (*_LABELS, "reason"),
)
_GAUGES = (CALLERS, PENDING, WORKING, CELL_SECONDS)


def cell_running_seconds(state: CallerStateReply) -> float:
    """Seconds the running execute request has run, from the reply's shell queues; 0 if none."""
    for queue in state.get("shell", {}).get("queues") or []:
        if queue.get("msg_type") == "execute_request" and queue.get("running"):
            return float(queue.get("running_for") or 0.0)
    return 0.0


class KernelMetrics:
    """Keeps the per-kernel series in step with the kernels the monitor sees."""

    def __init__(self) -> None:
        self._labels: dict[str, tuple[str, str]] = {}
        self._failure_reasons: dict[str, set[str]] = {}

    def observe(self, kernel_id: str, kernel_name: str, state: CallerStateReply) -> None:
        """Set the kernel's gauges from one snapshot."""
        labels = self._remember(kernel_id, kernel_name)
        CALLERS.labels(*labels).set(len(state.get("callers") or []))
        PENDING.labels(*labels).set(pending_total(state))
        WORKING.labels(*labels).set(1 if state.get("working") else 0)
        CELL_SECONDS.labels(*labels).set(cell_running_seconds(state))

    def failed(self, kernel_id: str, kernel_name: str, reason: str) -> None:
        """Count a failed snapshot of the kernel."""
        labels = self._remember(kernel_id, kernel_name)
        FAILURES.labels(*labels, reason).inc()
        self._failure_reasons.setdefault(kernel_id, set()).add(reason)

    def keep_only(self, kernel_ids: set[str]) -> None:
        """Remove the series of every kernel not in `kernel_ids` (they have shut down)."""
        for kernel_id in [k for k in self._labels if k not in kernel_ids]:
            self.forget(kernel_id)

    def forget(self, kernel_id: str) -> None:
        """Remove every series of the kernel."""
        labels = self._labels.pop(kernel_id, None)
        if labels is None:
            return
        for gauge in _GAUGES:
            with contextlib.suppress(KeyError):  # never set (only failures so far)
                gauge.remove(*labels)
        for reason in self._failure_reasons.pop(kernel_id, set()):
            with contextlib.suppress(KeyError):
                FAILURES.remove(*labels, reason)

    def _remember(self, kernel_id: str, kernel_name: str) -> tuple[str, str]:
        labels = (kernel_id, kernel_name)
        previous = self._labels.get(kernel_id)
        if previous is not None and previous != labels:  # renamed: drop the old series
            self.forget(kernel_id)
        self._labels[kernel_id] = labels
        return labels
