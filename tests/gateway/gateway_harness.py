"""A real Kernel Gateway and a Jupyter server forwarding to it (``--gateway-url``), on loopback.

- [KernelGateway][]: ``python -m kernel_gateway`` (jupyter-kernel-gateway, its websocket
  personality) as a subprocess in a temporary directory holding the ``async`` and ``async-trio``
  kernelspecs, on a free port of 127.0.0.1; optionally with an auth token, idle culling and the
  snapshot-hygiene setting (``untracked_message_types``) the docs recommend.
- [GatewayedServer][]: ``python -m jupyter_server`` with ``GatewayClient.url`` pointing at a
  gateway, this project's extension enabled, a token and a ``base_url``.

Both are stopped by their own pid (SIGTERM, then SIGKILL), and then every process they started
(kernels) by theirs. Nothing sleeps to synchronise: every wait polls a condition, with a
deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

import psutil
from loopback import HTTP_TIMEOUT, KernelChannel, Response, free_ports, http, wait_for

from async_kernel.kernelspec import make_kernel_spec

HYGIENE_CONFIG = """\
from async_kernel_server.gateway import GATEWAY_UNTRACKED_MESSAGE_TYPES

c.MappingKernelManager.untracked_message_types = list(GATEWAY_UNTRACKED_MESSAGE_TYPES)
"""
"""The gateway config that keeps snapshots out of its activity tracking."""

START_TIMEOUT = 90.0
"""Seconds a gateway or a server may take to answer its first request."""

STOP_TIMEOUT = 20.0
"""Seconds a process gets to exit after SIGTERM."""

KERNEL_NAMES = ("async", "async-trio")

KERNEL_READY_TIMEOUT = 60.0
"""Seconds a new kernel may take to answer a snapshot request."""


class _Process:
    """A server subprocess in a temporary directory, logging to a file there."""

    name = "process"

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"async-kernel-{self.name}-")
        self.root = Path(self._tmp.name)
        self.port = free_ports(1)[0]
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._children: dict[int, psutil.Process] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for var, sub in (
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_DATA_DIR", "data"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
        ):
            env[var] = str(self.root / sub)
        env["JUPYTER_PATH"] = str(self.root / "data")
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        return env

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        self._log = (self.root / f"{self.name}.log").open("wb")
        self.process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                return self.ready()
            except OSError:
                return False

        try:
            wait_for(up, START_TIMEOUT, f"{self.name} did not answer on port {self.port}")
        except AssertionError as err:
            self.stop()
            raise AssertionError(f"{err}\n{self.log_tail()}") from None

    def remember_children(self) -> None:
        """Note the processes started so far (kernels), to stop them by pid at the end."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children(recursive=True):
                self._children.setdefault(child.pid, child)

    def stop(self) -> None:
        if self.process is not None:
            self.remember_children()
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(STOP_TIMEOUT)
            for child in self._children.values():
                with contextlib.suppress(psutil.Error):
                    if child.is_running():
                        child.kill()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self._tmp.cleanup()

    def log_tail(self, lines: int = 60) -> str:
        path = self.root / f"{self.name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class KernelGateway(_Process):
    """jupyter-kernel-gateway serving the async kernelspecs.

    Args:
        token: ``KernelGatewayApp.auth_token`` (required on every request when set).
        hygiene: configure ``untracked_message_types`` as docs/remote-kernels.md recommends,
            so snapshots do not count as kernel activity at the gateway.
        cull_idle_timeout: seconds of inactivity after which the gateway culls a kernel
            (``0``: never); connected kernels are not culled (``cull_connected`` is False).
    """

    name = "kernel-gateway"

    def __init__(
        self, *, token: str | None = None, hygiene: bool = True, cull_idle_timeout: int = 0
    ) -> None:
        super().__init__()
        self.token = token
        self.hygiene = hygiene
        self.cull_idle_timeout = cull_idle_timeout
        if hygiene:  # exactly the config file docs/remote-kernels.md shows
            (self.root / "config").mkdir(parents=True)
            (self.root / "config" / "jupyter_kernel_gateway_config.py").write_text(HYGIENE_CONFIG)
        kernels = self.root / "data" / "kernels"
        for name, backend in zip(KERNEL_NAMES, ("asyncio", "trio"), strict=True):
            (kernels / name).mkdir(parents=True)
            spec = make_kernel_spec(backend)
            (kernels / name / "kernel.json").write_text(json.dumps(spec, indent=1))

    def command(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "kernel_gateway",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={self.port}",
            "--KernelGatewayApp.default_kernel_name=async",
            # jupyter_server's gateway kernel manager lists the gateway's kernels.
            "--JupyterWebsocketPersonality.list_kernels=True",
        ]
        if self.token:
            args.append(f"--KernelGatewayApp.auth_token={self.token}")
        if self.cull_idle_timeout:
            args += [
                f"--MappingKernelManager.cull_idle_timeout={self.cull_idle_timeout}",
                "--MappingKernelManager.cull_interval=1",
            ]
        return args

    def ready(self) -> bool:
        return self.api("GET", "api").status == 200

    def api(self, method: str, path: str, body: Any = None) -> Response:
        """A request to the gateway itself, with its token."""
        return http(method, self.url + path, token=self.token, body=body, timeout=HTTP_TIMEOUT)

    def kernel_model(self, kernel_id: str) -> dict[str, Any] | None:
        """The gateway's model of the kernel (``None`` once it is gone, e.g. culled)."""
        answer = self.api("GET", f"api/kernels/{kernel_id}")
        if answer.status == 404:
            return None
        assert answer.status == 200, answer.text
        model: dict[str, Any] = answer.json()
        return model


ENTERPRISE_GATEWAY_ENV = "ENTERPRISE_GATEWAY_PYTHON"
"""The environment variable naming the Python that runs Enterprise Gateway."""

ENTERPRISE_GATEWAY_LOCAL = Path(__file__).resolve().parents[2] / ".venv" / "enterprise-gateway"
"""Where ``scripts/ensure-enterprise-gateway.sh`` installs it (a venv of its own)."""


def enterprise_gateway_python() -> str:
    """The Python of Enterprise Gateway's own venv (its pins cannot share the project's)."""
    python = os.environ.get(ENTERPRISE_GATEWAY_ENV) or str(ENTERPRISE_GATEWAY_LOCAL / "bin/python")
    if not os.access(python, os.X_OK):
        raise AssertionError(
            f"no Enterprise Gateway at {python}: run `bash scripts/ensure-enterprise-gateway.sh` "
            f"(scripts/test.sh does) or set {ENTERPRISE_GATEWAY_ENV}"
        )
    return python


class EnterpriseGateway(KernelGateway):
    """jupyter-enterprise-gateway 3.3 (jupyter_server 1, jupyter_client 6) in its own venv,
    serving the same kernelspecs, which run the kernels with the project's Python.

    Its jupyter_server 1 has no ``untracked_message_types``: every iopub message is activity
    there, so ``hygiene`` does not apply (see docs/remote-kernels.md).
    """

    name = "enterprise-gateway"

    def __init__(self, *, token: str | None = None) -> None:
        super().__init__(token=token, hygiene=False)

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env["EG_LIST_KERNELS"] = "True"  # jupyter_server's gateway kernel manager lists them
        env["EG_UNAUTHORIZED_USERS"] = "nobody-in-particular"  # by default root may not
        return env

    def command(self) -> list[str]:
        args = [
            enterprise_gateway_python(),
            "-m",
            "enterprise_gateway",
            "--EnterpriseGatewayApp.ip=127.0.0.1",
            f"--EnterpriseGatewayApp.port={self.port}",
            "--EnterpriseGatewayApp.port_retries=0",
        ]
        if self.token:
            args.append(f"--EnterpriseGatewayApp.auth_token={self.token}")
        return args


class GatewayedServer(_Process):
    """A Jupyter server whose kernels live at `gateway`, with this project's extension."""

    name = "jupyter-server"
    base_url = "/base%40url/"

    def __init__(
        self,
        gateway: KernelGateway,
        *,
        gateway_token: str | None = None,
        snapshot_timeout: float = 3.0,
    ) -> None:
        super().__init__()
        self.gateway = gateway
        self.token = secrets.token_hex(16)
        config: dict[str, Any] = {
            "ServerApp": {
                "ip": "127.0.0.1",
                "port": self.port,
                "port_retries": 0,
                "open_browser": False,
                "base_url": self.base_url,
                "allow_root": True,
                # Only this project's extension: the others would slow every start.
                "jpserver_extensions": {
                    "async_kernel_server": True,
                    "jupyterlab": False,
                    "jupyter_lsp": False,
                    "notebook_shim": False,
                    "jupyter_server_terminals": False,
                },
            },
            "IdentityProvider": {"token": self.token},
            "GatewayClient": {"url": gateway.url.rstrip("/"), "request_timeout": 60.0},
            "AsyncKernelServer": {"snapshot_timeout": snapshot_timeout},
        }
        if gateway_token is not None:
            config["GatewayClient"]["auth_token"] = gateway_token
        (self.root / "config").mkdir(parents=True)
        (self.root / "config" / "jupyter_server_config.json").write_text(json.dumps(config))

    def command(self) -> list[str]:
        return [sys.executable, "-m", "jupyter_server"]

    def ready(self) -> bool:
        return self.api("GET", "api/status").status == 200

    def api(
        self, method: str, path: str, body: Any = None, *, timeout: float = HTTP_TIMEOUT
    ) -> Response:
        """A request to the server (under its base_url), with its token."""
        url = f"{self.url.rstrip('/')}{self.base_url}{path}"
        return http(method, url, token=self.token, body=body, timeout=timeout)

    def start_kernel(self, name: str) -> str:
        """POST /api/kernels (the server forwards it to the gateway); the new kernel's id."""
        answer = self.api("POST", "api/kernels", {"name": name})
        assert answer.status == 201, answer.text
        return str(answer.json()["id"])

    def channel(self, kernel_id: str) -> KernelChannel:
        """The kernel's websocket at the server (which forwards it to the gateway), open."""
        url = (
            f"ws://127.0.0.1:{self.port}{self.base_url}api/kernels/{kernel_id}/channels"
            f"?session_id={secrets.token_hex(8)}"
        )
        channel = KernelChannel(url, self.token).open()
        channel.wait_ready()
        return channel


class Kernels:
    """Start kernels through a server; shut every one down (and close its channels) at the end."""

    def __init__(self) -> None:
        self._started: list[tuple[GatewayedServer, str]] = []
        self._channels: list[KernelChannel] = []

    def start(self, server: GatewayedServer, name: str = "async") -> tuple[str, KernelChannel]:
        """A new kernel and its open websocket (through the server), once it answers."""
        kernel_id = server.start_kernel(name)
        self._started.append((server, kernel_id))
        channel = server.channel(kernel_id)
        self._channels.append(channel)

        def snapshot_answers() -> bool:
            return server.api("GET", f"api/async-kernel/kernels/{kernel_id}").status == 200

        wait_for(snapshot_answers, KERNEL_READY_TIMEOUT, f"kernel {kernel_id} did not answer")
        return kernel_id, channel

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        for server, kernel_id in self._started:
            with contextlib.suppress(OSError):
                server.api("DELETE", f"api/kernels/{kernel_id}")
            server.remember_children()
