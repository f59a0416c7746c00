"""Ask the server's kernels for their Caller state: the seam between REST handlers and kernels.

`KernelSnapshots` knows the server's kernel manager and nothing of HTTP. It raises the errors of
`async_kernel_provisioner.errors`; the handlers turn them into HTTP statuses.

Per kernel it keeps one `async_kernel_provisioner.ControlAsker` (one control connection, made
from the kernel's connection info by `async_kernel_provisioner.control.connect_control`, as the
provisioner makes its own) and the decision whether
the kernel is an async kernel. Both are dropped when the kernel leaves the
kernel manager (checked on every call) and when the extension stops. Keeping the connection
avoids a TCP connect and a ZMQ handshake per snapshot, and the kernel does not see a new peer
every time a dashboard polls; requests on it are matched to replies by ``msg_id``, so concurrent
requests (the list and a detail view at once) share it safely.

Kernels of a gateway kernel manager (``--gateway-url``: Kernel Gateway, Enterprise Gateway) have
no ZMQ ports here: they get an `async_kernel_server.gateway.GatewayAsker` instead, which talks to
the gateway's kernel websocket and closes it after each burst (the requests of one snapshot or
list row). Their ``kernel_name``, ``execution_state`` and ``last_activity`` are the gateway's
(its kernel model, refreshed once per list and per snapshot).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, cast

from jupyter_core.utils import ensure_async
from jupyter_server.gateway.managers import GatewayKernelManager, GatewayMappingKernelManager

from async_kernel.wire import (
    CALLER_STATE_FEATURE,
    CALLER_STATE_REPLY,
    CALLER_STATE_REQUEST,
    PROVISIONER_NAME,
    CallerStateReply,
    format_time,
    pending_total,
)
from async_kernel_provisioner import (
    AsyncKernelError,
    AsyncKernelProvisioner,
    NotAnAsyncKernel,
    UnknownKernel,
)
from async_kernel_provisioner.control import (
    connect_control,
    connection_fingerprint,
    zmq_context_of,
)
from async_kernel_server.gateway import GatewayAsker

__all__ = ["KernelAsker", "KernelSnapshots"]


class KernelAsker(Protocol):
    """What snapshots need of a connection to one kernel: `ControlAsker` (local kernels, ZMQ)
    and `GatewayAsker` (kernels behind a gateway) both are one."""

    @property
    def closed(self) -> bool: ...

    def burst(self) -> AbstractAsyncContextManager[None]: ...

    async def caller_state(self, *, timeout: float) -> CallerStateReply: ...

    async def kernel_info(self, *, timeout: float) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass
class _Kernel:
    """What we keep per running kernel."""

    manager: Any
    asker: KernelAsker
    connection_key: tuple[tuple[str, str], ...]
    is_async: bool | None = None


class KernelSnapshots:
    """Caller-state snapshots of the kernels of one kernel manager.

    Use from the Jupyter server's event loop. Nothing here executes code in a kernel or changes
    its state: the only messages sent are ``kernel_info_request`` (once per kernel, and only when
    its kernelspec does not tell) and ``caller_state_request``, both on the control channel.
    Creating it registers the caller_state messages as untracked by the kernel manager, so
    snapshots do not count as user activity (idle culling and ``execution_state`` stay as they
    were).

    Args:
        kernel_manager: the server's (multi) kernel manager, ``serverapp.kernel_manager``.
        timeout: seconds one kernel may take to answer, for one snapshot or one list row.
        log: where to log.
    """

    def __init__(
        self, kernel_manager: Any, *, timeout: float, log: logging.Logger | None = None
    ) -> None:
        self.kernel_manager = kernel_manager
        self.timeout = timeout
        self.log = log or logging.getLogger(__name__)
        self._kernels: dict[str, _Kernel] = {}
        _not_user_activity(kernel_manager)

    async def snapshot(self, kernel_id: str) -> dict[str, Any]:
        """The kernel's ``caller_state_reply`` content plus ``kernel_id``, ``kernel_name``,
        ``execution_state`` and ``fetched_at`` (ISO 8601, UTC).

        Raises:
            UnknownKernel: no running kernel has this id.
            NotAnAsyncKernel: the kernel does not speak caller_state.
            KernelNotAlive: the kernel process is not running.
            NoAnswerInTime: no answer within ``timeout`` seconds (for the whole call).
            KernelReplyError: the kernel answered with an error.
        """
        kernel = self._kernel(kernel_id)
        state = await self._caller_state(kernel_id, kernel)
        await self._refresh_gateway_model(kernel.manager)
        return {
            **state,
            "kernel_id": kernel_id,
            **_identity(kernel.manager),
            "fetched_at": _utc_now(),
        }

    async def caller_state(self, kernel_id: str) -> tuple[CallerStateReply, dict[str, Any]]:
        """The kernel's ``caller_state_reply`` content and its identity (``kernel_name``,
        ``execution_state``, ``last_activity``), for the activity monitor.

        Raises: as [snapshot][async_kernel_server.snapshots.KernelSnapshots.snapshot].
        """
        kernel = self._kernel(kernel_id)
        state = await self._caller_state(kernel_id, kernel)
        return state, _identity(kernel.manager)

    def known_async(self, kernel_id: str) -> bool:
        """Whether the kernel is known to be an async kernel, found out without asking it:
        its provisioner or kernelspec says so, or an earlier request found out. False for a
        kernel that is not running."""
        try:
            kernel = self._kernel(kernel_id)
        except UnknownKernel:
            return False
        if kernel.is_async is None and _launched_as_async_kernel(kernel.manager):
            kernel.is_async = True
        return bool(kernel.is_async)

    def manager_of(self, kernel_id: str) -> Any:
        """The kernel's manager (the server's per-kernel KernelManager)."""
        return self._kernel(kernel_id).manager

    async def rows(self) -> list[dict[str, Any]]:
        """One summary row per running kernel, asking all kernels concurrently.

        Each kernel has its own ``timeout``; a kernel that fails gets an ``error`` row, so a
        stuck kernel never stalls the list. Never raises for a single kernel's failure.
        """
        if isinstance(self.kernel_manager, GatewayMappingKernelManager):
            # One GET of the gateway's kernel list refreshes every kernel's model (name, state,
            # activity) and forgets kernels the gateway culled.
            try:
                await cast(Any, self.kernel_manager).list_kernels()
            except Exception as exc:  # the rows then say what is wrong, kernel by kernel
                self.log.warning("async_kernel_server: listing the gateway's kernels: %s", exc)
        ids = list(self.kernel_manager.list_kernel_ids())
        rows = await asyncio.gather(*(self._row(kernel_id) for kernel_id in ids))
        return [row for row in rows if row is not None]

    def close(self) -> None:
        """Close every control connection. Later calls open new ones."""
        for kernel in self._kernels.values():
            kernel.asker.close()
        self._kernels.clear()

    async def _row(self, kernel_id: str) -> dict[str, Any] | None:
        try:
            kernel = self._kernel(kernel_id)
        except UnknownKernel:  # shut down while we were listing
            return None
        row: dict[str, Any] = {"kernel_id": kernel_id, **_identity(kernel.manager)}
        row["async_kernel"] = False
        row["working"] = False
        try:
            state = await self._caller_state(kernel_id, kernel)
        except NotAnAsyncKernel:
            return row
        except Exception as exc:
            if not isinstance(exc, AsyncKernelError):
                self.log.exception("async_kernel_server: snapshot of kernel %s failed", kernel_id)
            row["async_kernel"] = bool(kernel.is_async)
            row["error"] = f"{type(exc).__name__}: {exc}"
            return row
        row.update(_identity(kernel.manager))  # fresher execution_state
        row["async_kernel"] = True
        row["working"] = bool(state.get("working", False))
        row["backend"] = state.get("backend")
        row["pid"] = state.get("pid")
        row["callers"] = len(state.get("callers") or [])
        row["pending"] = pending_total(state)
        return row

    async def _caller_state(self, kernel_id: str, kernel: _Kernel) -> CallerStateReply:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        async with kernel.asker.burst():
            if not await self._is_async(kernel, timeout=self.timeout):
                raise NotAnAsyncKernel(
                    f"kernel {kernel_id} ({_identity(kernel.manager)['kernel_name']}) is not an "
                    "async kernel: it does not answer caller_state_request"
                )
            remaining = max(deadline - loop.time(), 0.0)
            return await kernel.asker.caller_state(timeout=remaining)

    async def _refresh_gateway_model(self, manager: Any) -> None:
        """Fetch a gateway kernel's model (its name, execution_state, last_activity)."""
        if isinstance(manager, GatewayKernelManager):
            try:
                await cast(Any, manager).refresh_model()
            except Exception as exc:  # keep the model we had; the state itself is fresh
                self.log.debug("async_kernel_server: refreshing a gateway kernel model: %s", exc)

    async def _is_async(self, kernel: _Kernel, *, timeout: float) -> bool:
        """Decide (once per kernel) whether it is an async kernel, without waiting out a timeout.

        The kernelspec / provisioner decides when it names async-kernel's provisioner; otherwise
        ``kernel_info_reply.supported_features`` (asked on control) does. Only a kernel that does
        not answer kernel_info at all costs the timeout, and then nothing is cached.
        """
        if kernel.is_async is None:
            if _launched_as_async_kernel(kernel.manager):
                kernel.is_async = True
            else:
                info = await kernel.asker.kernel_info(timeout=timeout)
                kernel.is_async = CALLER_STATE_FEATURE in (info.get("supported_features") or [])
        return kernel.is_async

    def _kernel(self, kernel_id: str) -> _Kernel:
        """The cached per-kernel state, (re)made when the kernel or its connection changed."""
        running = set(self.kernel_manager.list_kernel_ids())
        for gone in [k for k in self._kernels if k not in running]:
            self._kernels.pop(gone).asker.close()
        if kernel_id not in running:
            raise UnknownKernel(f"no running kernel has id {kernel_id!r}")
        manager = self.kernel_manager.get_kernel(kernel_id)
        connection_key = _connection_key(manager)
        kernel = self._kernels.get(kernel_id)
        if (
            kernel is None
            or kernel.manager is not manager
            or kernel.connection_key != connection_key
            or kernel.asker.closed
        ):
            if kernel is not None:
                kernel.asker.close()
            kernel = _Kernel(manager, _asker_for(kernel_id, manager), connection_key)
            self._kernels[kernel_id] = kernel
        return kernel


def _not_user_activity(kernel_manager: Any) -> None:
    """Make the kernel manager ignore snapshot traffic when it tracks kernel activity.

    Kernels publish ``status: busy`` / ``idle`` on iopub for every request, control requests
    included. jupyter_server's kernel manager counts those as user activity unless the parent
    request's type is in its ``untracked_message_types`` (``kernel_info_request`` already is):
    without this, polling snapshots would keep idle kernels from being culled and would flip a
    busy kernel's ``execution_state`` to ``idle`` while its cell still runs.
    """
    untracked = getattr(kernel_manager, "untracked_message_types", None)
    if untracked is None:
        return
    missing = [t for t in (CALLER_STATE_REQUEST, CALLER_STATE_REPLY) if t not in untracked]
    if missing:
        kernel_manager.untracked_message_types = [*untracked, *missing]


def _asker_for(kernel_id: str, manager: Any) -> KernelAsker:
    """How to ask the kernel `manager` runs: through the gateway when it runs behind one, else a
    ControlAsker over ZMQ made as the provisioner makes its own."""
    if isinstance(manager, GatewayKernelManager):
        return GatewayAsker(kernel_id)

    async def is_alive() -> bool:
        return bool(await ensure_async(manager.is_alive()))

    return connect_control(
        manager.get_connection_info(), is_alive=is_alive, context=zmq_context_of(manager)
    )


def _launched_as_async_kernel(manager: Any) -> bool:
    """Whether the kernel was launched as an async kernel: by this project's provisioner, or
    from a kernelspec that names it or runs ``python -m async_kernel``. No kernel traffic."""
    if isinstance(getattr(manager, "provisioner", None), AsyncKernelProvisioner):
        return True
    try:
        spec = manager.kernel_spec
        metadata = spec.metadata
        argv = list(spec.argv or [])
    except Exception:  # spec removed since launch, or a manager without local specs
        return False
    provisioner = (metadata or {}).get("kernel_provisioner") or {}
    if provisioner.get("provisioner_name") == PROVISIONER_NAME:
        return True
    return any(argv[i] == "-m" and argv[i + 1] == "async_kernel" for i in range(len(argv) - 1))


def _connection_key(manager: Any) -> tuple[tuple[str, str], ...]:
    try:
        info = manager.get_connection_info()
    except Exception:
        return ()
    return connection_fingerprint(info)


def _identity(manager: Any) -> dict[str, Any]:
    last_activity = getattr(manager, "last_activity", None)
    name = getattr(manager, "kernel_name", None)
    if isinstance(manager, GatewayKernelManager):  # its kernel_name is never set: the model's
        model = manager.kernel if isinstance(manager.kernel, dict) else {}
        name = model.get("name", name)
    return {
        "kernel_name": name,
        "execution_state": getattr(manager, "execution_state", None),
        "last_activity": (
            format_time(last_activity.timestamp())
            if isinstance(last_activity, datetime.datetime)
            else None
        ),
    }


def _utc_now() -> str:
    return format_time(time.time())
