"""A real Jupyter server (pytest-jupyter) with the extension enabled and isolated kernelspecs.

pytest-jupyter is imported into this conftest rather than loaded as a plugin, so its fixtures
and its hooks (it runs every test function of this folder itself, coroutines on its own asyncio
loop) apply to this folder only: as a plugin they would take over the anyio-run tests of
tests/kernel_side too. So plain ``pytest`` from the repository root runs every suite in one
session, and ``pytest tests/server_side`` runs this one.

Every test gets its own server (``jp_serverapp``) with ``base_url`` ``/a%40b/`` (pytest-jupyter's
default ``jp_base_url``), its own Jupyter data dir holding these kernelspecs, and ipykernel's
native ``python3``:

- ``async`` / ``async-trio``: as ``async-kernel install`` writes them (provisioner, backend);
- ``async-plain``: an async kernel *without* the provisioner, launched so that its argv does not
  say ``-m async_kernel``: found out by ``kernel_info``;
- ``async-bad``: the provisioner configured with a backend that does not exist.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.session import Session
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures and hooks, this folder only)
from tornado.httpclient import HTTPClientError, HTTPResponse
from traitlets.config import Config

from async_kernel.kernelspec import make_kernel_spec

KERNEL_READY_TIMEOUT = 60.0
"""Seconds a kernel may take to start answering (generous: CI machines can be slow)."""


def _write_spec(kernel_dir: Path, name: str, spec: dict[str, Any]) -> None:
    (kernel_dir / name).mkdir(parents=True, exist_ok=True)
    (kernel_dir / name / "kernel.json").write_text(json.dumps(spec, indent=1), "utf8")


@pytest.fixture
def async_kernelspecs(jp_kernel_dir: Path) -> Path:
    """Write the test kernelspecs into the isolated data dir the test server reads."""
    kernel_dir = Path(jp_kernel_dir)
    _write_spec(kernel_dir, "async", make_kernel_spec("asyncio"))
    _write_spec(kernel_dir, "async-trio", make_kernel_spec("trio"))
    plain = make_kernel_spec("asyncio", display_name="async, no provisioner")
    del plain["metadata"]["kernel_provisioner"]
    # A launcher whose argv does not say `-m async_kernel`: only kernel_info can tell.
    assert plain["argv"][1:3] == ["-m", "async_kernel"], plain["argv"]
    plain["argv"][1:3] = ["-c", "from async_kernel.cli import main; raise SystemExit(main())"]
    _write_spec(kernel_dir, "async-plain", plain)
    bad = make_kernel_spec("asyncio", display_name="async, bad backend")
    bad["metadata"]["kernel_provisioner"]["config"]["backend"] = "curio"
    _write_spec(kernel_dir, "async-bad", bad)
    return kernel_dir


@pytest.fixture
def snapshot_timeout() -> float:
    """``c.AsyncKernelServer.snapshot_timeout`` for the test's server; override per module."""
    return 5.0


@pytest.fixture
def extra_server_config() -> dict[str, Any]:
    """More server config for a module's tests (merged into ``jp_server_config``)."""
    return {}


@pytest.fixture
def jp_server_config(
    async_kernelspecs: Path, snapshot_timeout: float, extra_server_config: dict[str, Any]
) -> Config:
    """Enable the extension, set its timeout, and keep servers off the user's config."""
    config = Config(
        {
            "ServerApp": {"jpserver_extensions": {"async_kernel_server": True}},
            "AsyncKernelServer": {"snapshot_timeout": snapshot_timeout},
        }
    )
    config.merge(Config(extra_server_config))
    return config


Fetch = Callable[..., Awaitable[HTTPResponse]]


class Api:
    """GET/POST the test server's REST API and parse the JSON answer, errors included."""

    def __init__(self, jp_fetch: Fetch) -> None:
        self.jp_fetch = jp_fetch

    async def __call__(self, *parts: str, **kwargs: Any) -> tuple[int, Any]:
        """Fetch ``parts`` (joined under the base_url); return ``(status, parsed JSON body)``."""
        try:
            response = await self.jp_fetch(*parts, **kwargs)
        except HTTPClientError as err:
            body = err.response.body if err.response is not None else b""
            return err.code, json.loads(body or b"null")
        return response.code, json.loads(response.body or b"null")

    async def snapshot(self, kernel_id: str, **kwargs: Any) -> tuple[int, Any]:
        """GET api/async-kernel/kernels/{kernel_id}."""
        return await self("api", "async-kernel", "kernels", kernel_id, **kwargs)

    async def rows(self, **kwargs: Any) -> dict[str, dict[str, Any]]:
        """GET api/async-kernel/kernels, as {kernel_id: row}; fails unless 200."""
        status, body = await self("api", "async-kernel", "kernels", **kwargs)
        assert status == 200, body
        return {row["kernel_id"]: row for row in body["kernels"]}


@pytest.fixture
def api(jp_serverapp: Any, jp_fetch: Fetch) -> Api:
    """The REST API of the test server (the extension's endpoints and jupyter_server's)."""
    return Api(jp_fetch)


class Kernels:
    """Start kernels through the REST API and talk to them with real kernel clients."""

    def __init__(self, serverapp: Any, api: Api) -> None:
        self.serverapp = serverapp
        self.api = api
        self._clients: dict[str, AsyncKernelClient] = {}

    @property
    def manager(self) -> Any:
        """The server's multi kernel manager."""
        return self.serverapp.kernel_manager

    async def start(self, name: str, *, ready: bool = True) -> str:
        """POST /api/kernels; with ``ready``, wait until the kernel answers on shell."""
        status, model = await self.api(
            "api", "kernels", method="POST", body=json.dumps({"name": name})
        )
        assert status == 201, model
        if ready:
            await self.client(model["id"])
        return str(model["id"])

    async def client(self, kernel_id: str) -> AsyncKernelClient:
        """A started client of the kernel (one per kernel, stopped at teardown), once the
        kernel answers on shell.

        Each client gets a session of its own: clients that share the kernel manager's session
        share its ZMQ identity, and the kernel's ROUTER sockets drop all but one of them.
        """
        client = self._clients.get(kernel_id)
        if client is None:
            km = self.manager.get_kernel(kernel_id)
            session = Session(
                parent=km, key=km.session.key, signature_scheme=km.session.signature_scheme
            )
            client = km.client(session=session)
            client.start_channels()
            self._clients[kernel_id] = client
        await client.wait_for_ready(timeout=KERNEL_READY_TIMEOUT)
        return client

    def pid(self, kernel_id: str) -> int:
        """The pid of the kernel process, as its provisioner launched it."""
        return int(self.manager.get_kernel(kernel_id).provisioner.pid)

    async def kill(self, kernel_id: str) -> None:
        """SIGKILL the kernel (its restarter stopped first) and wait for the process to exit."""
        km = self.manager.get_kernel(kernel_id)
        km.stop_restarter()
        process = km.provisioner.process
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait, 30)

    def close(self) -> None:
        """Stop every client made by this helper."""
        for client in self._clients.values():
            client.stop_channels()

    @staticmethod
    async def run_cell(
        client: AsyncKernelClient, code: str, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Execute ``code`` and return the execute_reply content (any status)."""
        reply = await client.execute_interactive(
            code, timeout=timeout, output_hook=lambda msg: None
        )
        content: dict[str, Any] = reply["content"]
        return content

    @staticmethod
    async def wait_for_iopub(
        client: AsyncKernelClient, parent_id: str, msg_type: str, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Wait for the iopub message of ``msg_type`` that answers request ``parent_id``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = max(deadline - loop.time(), 0)
            msg: dict[str, Any] = await client.get_iopub_msg(timeout=remaining)
            if msg["parent_header"].get("msg_id") == parent_id and msg["msg_type"] == msg_type:
                return msg

    @staticmethod
    async def wait_for_reply(
        client: AsyncKernelClient, parent_id: str, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Wait for the shell reply to request ``parent_id``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = max(deadline - loop.time(), 0)
            msg: dict[str, Any] = await client.get_shell_msg(timeout=remaining)
            if msg["parent_header"].get("msg_id") == parent_id:
                return msg


@pytest.fixture
def kernels(jp_serverapp: Any, api: Api) -> Iterator[Kernels]:
    """Start kernels via REST and get clients to them; clients are stopped afterwards."""
    helper = Kernels(jp_serverapp, api)
    yield helper
    helper.close()
