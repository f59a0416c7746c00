"""The kernel provisioner that launches async-kernel processes and asks them for Caller state."""

from __future__ import annotations

import os
from typing import Any

from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import Float, Unicode, validate

from async_kernel.wire import BACKENDS, PROVISIONER_NAME, CallerStateReply, is_backend
from async_kernel_provisioner.control import (
    ControlAsker,
    connect_control,
    connection_fingerprint,
    zmq_context_of,
)
from async_kernel_provisioner.errors import InvalidBackend

__all__ = ["BACKENDS", "AsyncKernelProvisioner"]


class AsyncKernelProvisioner(LocalProvisioner):
    """Launches ``python -m async_kernel`` locally, with the configured anyio backend.

    Registered as ``async-kernel-provisioner`` in the ``jupyter_client.kernel_provisioners``
    entry point group. A kernelspec selects it, and configures it, in its metadata::

        "metadata": {"kernel_provisioner": {
            "provisioner_name": "async-kernel-provisioner",
            "config": {"backend": "trio"}}}

    Everything else (ports, connection file, signals, restart, shutdown) is jupyter_client's
    ``LocalProvisioner``'s.
    On top of it, [caller_state][async_kernel_provisioner.async_provisioner.AsyncKernelProvisioner.caller_state]
    asks the running kernel for a snapshot of its callers over the control channel.
    """

    backend = Unicode(
        "asyncio",
        config=True,
        help="""The anyio backend the kernel runs its event loops on: 'asyncio' or 'trio'.
        Set it in the kernelspec's metadata.kernel_provisioner.config.backend. It is passed to
        the kernel as `--backend BACKEND`, replacing any --backend already in the kernelspec argv.
        Any other value fails the kernel's start with an error naming the valid ones.""",
    )

    liveness_interval = Float(
        0.25,
        config=True,
        help="""Seconds between checks that the kernel process is still alive while
        caller_state() waits for a reply, so a kernel that dies mid-request raises
        KernelNotAlive promptly instead of NoAnswerInTime at the end of the timeout.""",
    )

    _asker: ControlAsker | None = None
    _asker_key: tuple[tuple[str, str], ...] | None = None

    @validate("backend")
    def _validate_backend(self, proposal: Any) -> str:
        value = proposal["value"]
        if not is_backend(value):
            spec = self.kernel_spec
            where = "AsyncKernelProvisioner.backend"
            if spec is not None:
                name = os.path.basename(spec.resource_dir or "") or spec.display_name
                where = f"kernelspec {name!r} (metadata.kernel_provisioner.config.backend)"
            valid = ", ".join(repr(b) for b in BACKENDS)
            raise InvalidBackend(
                f"{PROVISIONER_NAME}: invalid backend {value!r} in {where}; "
                f"valid backends are {valid}"
            )
        return str(value)

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Prepare the launch as LocalProvisioner does, then set ``--backend`` in the command.

        An existing ``--backend X`` or ``--backend=X`` in the command is replaced by this
        provisioner's ``backend``; without one, ``--backend BACKEND`` is appended.
        """
        kwargs = await super().pre_launch(**kwargs)
        kwargs["cmd"] = with_backend(list(kwargs["cmd"]), self.backend)
        return kwargs

    async def get_provisioner_info(self) -> dict[str, Any]:
        """LocalProvisioner's persisted info plus ``backend``."""
        info = await super().get_provisioner_info()
        info["backend"] = self.backend
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """Restore what ``get_provisioner_info()`` saved, ``backend`` included."""
        await super().load_provisioner_info(provisioner_info)
        if "backend" in provisioner_info:
            self.backend = provisioner_info["backend"]

    async def caller_state(self, timeout: float = 5.0) -> CallerStateReply:
        """Ask the running kernel for its Caller state.

        Sends ``caller_state_request`` on the control channel, signed with the kernel's own
        session key from its connection info, and waits for the ``caller_state_reply`` whose
        ``parent_header.msg_id`` is the request's (other messages are ignored). The control
        connection is kept for later calls and closed in ``cleanup()``.

        Args:
            timeout: seconds to wait for the reply.

        Returns:
            The ``caller_state_reply`` content (see the wire contract in the docs).

        Raises:
            KernelNotAlive: the kernel process is not running, or died while we waited.
            NoAnswerInTime: the process lives but no reply came within ``timeout``.
            KernelReplyError: the kernel answered with an error.

        Call it from the event loop the kernel manager runs in (the server's). Cancelling it
        abandons the request; nothing in the kernel changes.
        """
        return await self._control_asker().caller_state(timeout=timeout)

    async def cleanup(self, restart: bool = False) -> None:
        """Close the control connection used by ``caller_state`` (unless restarting)."""
        if not restart:
            self._close_asker()
        await super().cleanup(restart=restart)

    def _control_asker(self) -> ControlAsker:
        info = self.connection_info
        key = connection_fingerprint(info)
        if self._asker is None or self._asker.closed or key != self._asker_key:
            self._close_asker()
            self._asker = connect_control(
                info,
                is_alive=self._kernel_alive,
                context=zmq_context_of(self.parent),
                liveness_interval=self.liveness_interval,
            )
            self._asker_key = key
        return self._asker

    def _close_asker(self) -> None:
        if self._asker is not None:
            self._asker.close()
            self._asker = None
            self._asker_key = None

    async def _kernel_alive(self) -> bool:
        if self.process is not None:
            return await self.poll() is None
        if self.pid:  # restored by load_provisioner_info: no Popen handle, only the pid
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        return False


def with_backend(cmd: list[str], backend: str) -> list[str]:
    """Return ``cmd`` with its ``--backend`` option set to ``backend`` (appended if absent)."""
    out: list[str] = []
    found = False
    skip_next = False
    for arg in cmd:
        if skip_next:
            skip_next = False
            continue
        if arg == "--backend":  # its value (if any) follows
            out += ["--backend", backend]
            found = skip_next = True
        elif arg.startswith("--backend="):
            out.append(f"--backend={backend}")
            found = True
        else:
            out.append(arg)
    if not found:
        out += ["--backend", backend]
    return out
